/**
 * Network option keys as Docker spells them (libnetwork's netlabel and
 * drivers/bridge/labels.go): shared vocabulary, so an entry point can fill
 * a request's options (the CNI configuration's `bridge`, `ipMasq`, `mtu`)
 * without knowing the driver that reads them.
 */
export const BRIDGE_NAME = 'com.docker.network.bridge.name';
export const ENABLE_ICC = 'com.docker.network.bridge.enable_icc';
export const ENABLE_IP_MASQUERADE = 'com.docker.network.bridge.enable_ip_masquerade';
export const HOST_BINDING_IPV4 = 'com.docker.network.bridge.host_binding_ipv4';
export const MTU = 'com.docker.network.driver.mtu';

/** VNIs netctl picks for overlay networks start here (as Docker's overlay); a pinned one may be any valid VNI. */
export const FIRST_VNI = 4096;
export const MAX_VNI = 0xffffff;
