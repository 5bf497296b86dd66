/**
 * IPAM errors. Each has a stable `code` (the lead folds them into the one
 * registry of src/core later) and a message that names the offending value.
 * An IPAM call that throws one of these, or the address module's
 * InvalidCidrError / InvalidAddressError, has changed nothing.
 */
import type { Family } from '../address.js';

export type IpamErrorCode =
  | 'ipam.invalid_request'
  | 'ipam.unknown_address_space'
  | 'ipam.pool_overlap'
  | 'ipam.pool_not_found'
  | 'ipam.pool_in_use'
  | 'ipam.no_available_pool'
  | 'ipam.no_available_ip'
  | 'ipam.address_in_use'
  | 'ipam.address_out_of_range'
  | 'ipam.contention';

export abstract class IpamError extends Error {
  abstract readonly code: IpamErrorCode;
}

/** A request that makes no sense as a whole (missing owner, conflicting options). */
export class InvalidRequestError extends IpamError {
  override readonly name = 'InvalidRequestError';
  readonly code = 'ipam.invalid_request';
}

export class UnknownAddressSpaceError extends IpamError {
  override readonly name = 'UnknownAddressSpaceError';
  readonly code = 'ipam.unknown_address_space';
  constructor(
    readonly space: string,
    known: readonly string[],
  ) {
    super(`unknown address space ${JSON.stringify(space)} (known: ${known.join(', ')})`);
  }
}

export class PoolOverlapError extends IpamError {
  override readonly name = 'PoolOverlapError';
  readonly code = 'ipam.pool_overlap';
  constructor(
    readonly subnet: string,
    readonly existing: string,
    readonly space: string,
  ) {
    super(
      subnet === existing
        ? `pool ${subnet} already exists in address space ${space}`
        : `subnet ${subnet} overlaps pool ${existing} in address space ${space}`,
    );
  }
}

export class PoolNotFoundError extends IpamError {
  override readonly name = 'PoolNotFoundError';
  readonly code = 'ipam.pool_not_found';
  constructor(readonly poolId: string) {
    super(`pool ${JSON.stringify(poolId)} not found`);
  }
}

export class PoolInUseError extends IpamError {
  override readonly name = 'PoolInUseError';
  readonly code = 'ipam.pool_in_use';
  constructor(
    readonly poolId: string,
    readonly allocated: number,
  ) {
    super(
      `pool ${poolId} still has ${allocated} allocated address${allocated === 1 ? '' : 'es'}; release them or force`,
    );
  }
}

/** Every default pool of the space (and family) overlaps an existing pool. */
export class NoAvailablePoolError extends IpamError {
  override readonly name = 'NoAvailablePoolError';
  readonly code = 'ipam.no_available_pool';
  constructor(
    readonly space: string,
    readonly family: Family,
    detail: string,
  ) {
    super(`no IPv${family} pool available in address space ${space}: ${detail}`);
  }
}

/** The pool (or its --ip-range) has no free address left. */
export class NoAvailableIpError extends IpamError {
  override readonly name = 'NoAvailableIpError';
  readonly code = 'ipam.no_available_ip';
  constructor(
    readonly poolId: string,
    readonly range: string,
  ) {
    super(`no available address in ${range} (pool ${poolId})`);
  }
}

export class AddressInUseError extends IpamError {
  override readonly name = 'AddressInUseError';
  readonly code = 'ipam.address_in_use';
  constructor(
    readonly address: string,
    readonly poolId: string,
    /** Who holds it: an owner id, or "gateway" / "aux:<name>" for the pool's reservations. */
    readonly holder: string | undefined,
  ) {
    super(`address ${address} in pool ${poolId} is already in use${holder ? ` by ${holder}` : ''}`);
  }
}

/** An address (requested, released, gateway, aux) outside the subnet it must belong to. */
export class AddressOutOfRangeError extends IpamError {
  override readonly name = 'AddressOutOfRangeError';
  readonly code = 'ipam.address_out_of_range';
  constructor(
    readonly address: string,
    readonly range: string,
    what = 'address',
  ) {
    super(`${what} ${address} is not in ${range}`);
  }
}

/** Too many concurrent writers kept invalidating our reads; nothing was written. */
export class ContentionError extends IpamError {
  override readonly name = 'ContentionError';
  readonly code = 'ipam.contention';
  constructor(
    readonly operation: string,
    readonly attempts: number,
  ) {
    super(`${operation} gave up after ${attempts} conflicting attempts; retry later`);
  }
}
