/**
 * What the kernel takes as an interface name (net/core/dev.c
 * dev_valid_name): 1-15 bytes (IFNAMSIZ with its NUL), not "." or "..",
 * and here only [A-Za-z0-9_.-] (no '/', ':' or whitespace, which ip(8)
 * and the kernel refuse). One pattern for every layer that checks one.
 */
export const LINK_NAME = /^(?!\.\.?$)[A-Za-z0-9_.-]{1,15}$/;

export const LINK_NAME_RULE = 'a link name of 1-15 characters [A-Za-z0-9_.-], not . or ..';
