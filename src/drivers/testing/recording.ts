/**
 * A bridge-like driver with nothing behind it, for unit tests of the
 * controller and the adapters: it records each call, checks options as the
 * real bridge driver does, and fails a call when asked to (failNext), so
 * the controller's undo paths can be driven without a kernel.
 */
import type { Driver, ExternalConnectivity } from '../../core/driver.js';
import type { EndpointInfo, JoinInfo } from '../../core/info.js';
import type { Network } from '../../core/model.js';
import { parseBridgeOptions } from '../bridge/options.js';

type Method =
  | 'createNetwork'
  | 'deleteNetwork'
  | 'createEndpoint'
  | 'deleteEndpoint'
  | 'join'
  | 'leave'
  | 'program'
  | 'revoke';

export class RecordingDriver implements Driver, ExternalConnectivity {
  readonly type = 'bridge';
  readonly calls: Method[] = [];
  /** Make the next call of a method throw this error (then forget it). */
  readonly failNext = new Map<Method, Error>();

  private record(method: Method): void {
    this.calls.push(method);
    const err = this.failNext.get(method);
    if (err) {
      this.failNext.delete(method);
      throw err;
    }
  }

  capability() {
    return { dataScope: 'local', connectivityScope: 'local' } as const;
  }
  checkOptions(network: Pick<Network, 'id' | 'options' | 'internal'>) {
    parseBridgeOptions(network);
  }
  async createNetwork() {
    this.record('createNetwork');
  }
  async deleteNetwork() {
    this.record('deleteNetwork');
  }
  async createEndpoint(_network: Network, _endpoint: EndpointInfo) {
    this.record('createEndpoint');
  }
  async deleteEndpoint() {
    this.record('deleteEndpoint');
  }
  async join(network: Network, _endpoint: unknown, _sandbox: unknown, join: JoinInfo) {
    this.record('join');
    const gateway = network.ipam.config[0]?.gateway;
    if (gateway) join.setGateway(gateway);
    join.srcName = 'vtest0';
    join.dstPrefix = 'eth';
  }
  async leave() {
    this.record('leave');
  }
  async programExternalConnectivity() {
    this.record('program');
  }
  async revokeExternalConnectivity() {
    this.record('revoke');
  }
}
