/**
 * Where the controller's records live in the KV store: the one place that
 * knows the key layout (state.ts reads and writes them, claims.ts claims).
 *
 *   netctl/v1/networks/<id>            Network
 *   netctl/v1/names/networks/<name>    network id (created once: names are unique)
 *   netctl/v1/endpoints/<id>           Endpoint
 *   netctl/v1/sandboxes/<id>           Sandbox (its endpointIds: exactly the endpoints joined to it)
 *   netctl/v1/names/sandboxes/<name>   sandbox id
 *   netctl/v1/intents/<id>             Intent (an operation in flight)
 *   netctl/v1/hostsfiles/<net>/<sb>    endpoint id: netctl's own sandbox <sb> is on network
 *                                      <net>, so its /etc/hosts follows who else is (an index,
 *                                      written with the endpoint; none for runtimes' sandboxes)
 *   netctl/v1/names/docker/<docker id> network id: the netctl network Docker network <docker id>
 *                                      is (written with the network's dockerId; docs/docker.md)
 *   netctl/v1/members/<net>/<ep>       owner: endpoint <ep> is on network <net> (claims.ts)
 *   netctl/v1/claims/...               owner: exclusive things an endpoint holds (claims.ts)
 *
 * On a store several hosts share, all of the above is the host's own
 * (src/kv/scoped.ts puts it under netctl/v1/local/<host id>/), and what the
 * cluster shares has keys of its own (clusterKeys, docs/overlay.md):
 *
 *   netctl/v1/cluster/networks/<id>          Network of global scope (overlay)
 *   netctl/v1/cluster/names/networks/<name>  its id
 *   netctl/v1/cluster/members/<net>/<ep>     owner: endpoint <ep> (of any host) is on global network <net>
 *   netctl/v1/cluster/vni/<vni>              network id: the VNI is taken
 *   netctl/v1/cluster/hosts/<host id>        HostRecord, under a lease (TTL) its daemon renews
 *   netctl/v1/cluster/peers/<net>/<ep>       Peer: where an endpoint of a global network is
 *   netctl/v1/cluster/docker/<net>/<host>    Docker network id: host <host>'s dockerd adopted global
 *                                            network <net> under that id (each host's dockerd has its
 *                                            own; the host's names/docker/<docker id> points back)
 */

import type { Scope } from '../core/model.js';
import { CLUSTER_ROOT } from '../kv/index.js';

export const ROOT = 'netctl/v1';

/** The shared keys of a store several hosts use. */
export const clusterKeys = {
  network: (id: string) => `${CLUSTER_ROOT}/networks/${id}`,
  networks: `${CLUSTER_ROOT}/networks/`,
  networkName: (name: string) => `${CLUSTER_ROOT}/names/networks/${name}`,
  member: (networkId: string, endpointId: string) => `${CLUSTER_ROOT}/members/${networkId}/${endpointId}`,
  membersOf: (networkId: string) => `${CLUSTER_ROOT}/members/${networkId}/`,
  vni: (vni: number) => `${CLUSTER_ROOT}/vni/${vni}`,
  vnis: `${CLUSTER_ROOT}/vni/`,
  host: (hostId: string) => `${CLUSTER_ROOT}/hosts/${hostId}`,
  hosts: `${CLUSTER_ROOT}/hosts/`,
  peer: (networkId: string, endpointId: string) => `${CLUSTER_ROOT}/peers/${networkId}/${endpointId}`,
  peersOf: (networkId: string) => `${CLUSTER_ROOT}/peers/${networkId}/`,
  peers: `${CLUSTER_ROOT}/peers/`,
  dockerNetwork: (networkId: string, hostId: string) => `${CLUSTER_ROOT}/docker/${networkId}/${hostId}`,
  dockerNetworksOf: (networkId: string) => `${CLUSTER_ROOT}/docker/${networkId}/`,
  dockerNetworks: `${CLUSTER_ROOT}/docker/`,
};

/** A network's record and name keys, by its scope. */
export const networkKeys = (scope: Scope) =>
  scope === 'global'
    ? { network: clusterKeys.network, networkName: clusterKeys.networkName, networks: clusterKeys.networks }
    : { network: recordKeys.network, networkName: recordKeys.networkName, networks: `${ROOT}/networks/` };

/** The key that holds an endpoint's place on its network (a member claim), by the network's scope. */
export const memberKey = (scope: Scope, networkId: string, endpointId: string) =>
  scope === 'global' ? clusterKeys.member(networkId, endpointId) : claimKeys.member(networkId, endpointId);

/** Keys of the claims (claims.ts has what they mean). */
export const claimKeys = {
  member: (networkId: string, endpointId: string) => `${ROOT}/members/${networkId}/${endpointId}`,
  membersOf: (networkId: string) => `${ROOT}/members/${networkId}/`,
  attach: (sandboxId: string, networkId: string) => `${ROOT}/claims/attach/${sandboxId}/${networkId}`,
  attachOf: (sandboxId: string) => `${ROOT}/claims/attach/${sandboxId}/`,
  ifname: (sandboxId: string, ifname: string) => `${ROOT}/claims/ifname/${sandboxId}/${ifname}`,
  ports: (proto: string, block: number) => `${ROOT}/claims/ports/${proto}/${block}`,
  portsOf: (proto: string) => `${ROOT}/claims/ports/${proto}/`,
  /** Every member and claim, for gc. */
  all: [`${ROOT}/members/`, `${ROOT}/claims/`],
};

/** Keys of the records and their indexes. */
export const recordKeys = {
  network: (id: string) => `${ROOT}/networks/${id}`,
  networkName: (name: string) => `${ROOT}/names/networks/${name}`,
  endpoint: (id: string) => `${ROOT}/endpoints/${id}`,
  sandbox: (id: string) => `${ROOT}/sandboxes/${id}`,
  sandboxName: (name: string) => `${ROOT}/names/sandboxes/${name}`,
  dockerNetwork: (dockerId: string) => `${ROOT}/names/docker/${dockerId}`,
  intent: (id: string) => `${ROOT}/intents/${id}`,
  hostsFiles: (networkId: string) => `${ROOT}/hostsfiles/${networkId}/`,
  hostsFile: (networkId: string, sandboxId: string) => `${ROOT}/hostsfiles/${networkId}/${sandboxId}`,
};
