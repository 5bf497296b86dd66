/**
 * Caller-owned info objects (libnetwork driverapi InterfaceInfo/JoinInfo):
 * drivers fill them, the controller validates and assembles the result.
 */
import type { Endpoint, Network } from './model.js';

/** What a driver gets to create a network: the record plus resolved addressing. */
export interface NetworkInfo {
  network: Network;
  /** Settings the driver chose (bridge name, MTU, ...), persisted with the network. */
  setDriverData(key: string, value: string): void;
}

export class EndpointInfo {
  readonly driverData: Record<string, string> = {};
  constructor(
    readonly endpoint: Readonly<Endpoint>,
    /** The MAC the controller proposes (random, locally administered). */
    public mac: string,
  ) {}

  setMacAddress(mac: string): void {
    this.mac = mac;
  }

  setDriverData(key: string, value: string): void {
    this.driverData[key] = value;
  }
}

export interface StaticRoute {
  destination: string;
  nextHop?: string;
}

/** Where the endpoint is to be plugged in. */
export interface SandboxInfo {
  id: string;
  /** netns path. */
  key: string;
  /** Interface name inside the sandbox (eth0, eth1, ...). */
  ifname: string;
  /**
   * 'in-place': the driver creates the interface directly in the sandbox
   * with its final name (netctl's own sandboxes, CNI). 'host-side': the
   * driver leaves it in the host namespace and reports its name; the caller
   * moves it (Docker's libnetwork does this itself).
   */
  placement: 'in-place' | 'host-side';
}

export class JoinInfo {
  gateway4: string | undefined;
  gateway6: string | undefined;
  readonly staticRoutes: StaticRoute[] = [];
  /** For 'host-side' placement: the host-side name of the interface to move, and the prefix to rename it to. */
  srcName: string | undefined;
  dstPrefix: string | undefined;
  /** No default route through this endpoint (internal networks). */
  disableGatewayService = false;
  /** The driver put an interface in the sandbox for the caller to configure (host and none do not). */
  plugged = false;

  setPlugged(): void {
    this.plugged = true;
  }

  setGateway(ip: string): void {
    this.gateway4 = ip;
  }

  setGatewayIPv6(ip: string): void {
    this.gateway6 = ip;
  }

  addStaticRoute(route: StaticRoute): void {
    this.staticRoutes.push(route);
  }

  setInterfaceName(srcName: string, dstPrefix: string): void {
    this.srcName = srcName;
    this.dstPrefix = dstPrefix;
  }
}
