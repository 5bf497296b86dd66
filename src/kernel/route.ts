/** Routes: `ip route` verbs over one Netlink handle. */
import { rt } from 'netlink';
import { bytesToIp, type Family, familyOf, ipToBytes, parsePrefix } from '../address.js';
import { linkLabel } from './errors.js';
import { type LinkRef, linkIndex } from './link.js';
import { AF_INET, addressFamily, CREATE, type Netlink, REPLACE } from './netlink.js';

const { MessageType, RouteScope, RouteType } = rt;

export const RT_TABLE_MAIN = 254;
// rtnetlink.h: RTPROT_STATIC, "route installed by administrator".
export const RTPROT_STATIC = 4;

export type Scope = 'universe' | 'link' | 'host';
const SCOPES: Record<Scope, number> = {
  universe: RouteScope.UNIVERSE,
  link: RouteScope.LINK,
  host: RouteScope.HOST,
};

export interface NewRoute {
  /** Destination prefix, or "default" (with family taken from the gateway). */
  dst: string;
  gateway?: string;
  link?: LinkRef;
  /** Preferred source address. */
  src?: string;
  /** Default: "link" for a route without gateway, "universe" otherwise (as ip(8)). */
  scope?: Scope;
  table?: number;
  metric?: number;
  protocol?: number;
  /** Needed only for "default" without a gateway. */
  family?: Family;
}

export interface Route {
  dst: string;
  gateway: string | undefined;
  linkIndex: number | undefined;
  src: string | undefined;
  scope: number;
  table: number;
  protocol: number;
  metric: number | undefined;
  family: Family;
}

function routeFamily(route: NewRoute): Family {
  if (route.dst !== 'default') return parsePrefix(route.dst).family;
  if (route.gateway) return familyOf(route.gateway);
  return route.family ?? 4;
}

async function routeMessage(h: Netlink, route: NewRoute): Promise<rt.RouteMessage> {
  const family = routeFamily(route);
  const attrs: rt.RouteAttrs = {};
  let dstLen = 0;
  if (route.dst !== 'default') {
    const prefix = parsePrefix(route.dst);
    attrs.dst = ipToBytes(prefix.ip);
    dstLen = prefix.prefixLength;
  }
  if (route.gateway) attrs.gateway = ipToBytes(route.gateway);
  if (route.link !== undefined) attrs.oif = await linkIndex(h, route.link);
  if (route.src) attrs.prefsrc = ipToBytes(route.src);
  if (route.metric !== undefined) attrs.priority = route.metric;
  const table = route.table ?? RT_TABLE_MAIN;
  if (table > 255) attrs.table = table;
  return {
    kind: 'route',
    data: {
      family: addressFamily(family),
      dstLen,
      table: table > 255 ? 0 : table,
      protocol: route.protocol ?? RTPROT_STATIC,
      scope: SCOPES[route.scope ?? (route.gateway ? 'universe' : 'link')],
      type: RouteType.UNICAST,
    },
    attrs,
  };
}

/** The route as ip(8) would write it, for messages: `route 10.1.0.0/24 via 10.1.0.1 dev "br0"`. */
function describeRoute(route: NewRoute): string {
  let text = `route ${route.dst}`;
  if (route.gateway) text += ` via ${route.gateway}`;
  if (route.link !== undefined) text += ` dev ${linkLabel(route.link)}`;
  if (route.src) text += ` src ${route.src}`;
  if (route.table !== undefined && route.table !== RT_TABLE_MAIN) text += ` table ${route.table}`;
  if (route.metric !== undefined) text += ` metric ${route.metric}`;
  return text;
}

async function newRoute(h: Netlink, route: NewRoute, flags: number, verb: string): Promise<void> {
  const message = await routeMessage(h, route);
  await h.request(
    MessageType.NEWROUTE,
    (out) => rt.formatRouteMessage(message, out),
    flags,
    `${verb} ${describeRoute(route)}`,
  );
}

/** Equivalent to: `ip route add DST [via GW] [dev LINK]`. Throws KernelError EEXIST. */
export function routeAdd(h: Netlink, route: NewRoute): Promise<void> {
  return newRoute(h, route, CREATE, 'add');
}

/** Equivalent to: `ip route replace DST ...` (idempotent add). */
export function routeReplace(h: Netlink, route: NewRoute): Promise<void> {
  return newRoute(h, route, REPLACE, 'replace');
}

/** Equivalent to: `ip route del DST ...`. An absent route is success. */
export async function routeDel(h: Netlink, route: NewRoute): Promise<void> {
  const message = await routeMessage(h, route);
  // Let the kernel match any scope/protocol, as ip(8) does for deletes.
  message.data.scope = RouteScope.NOWHERE;
  message.data.protocol = 0 as rt.RouteProtocol; // RTPROT_UNSPEC
  await h.remove(
    MessageType.DELROUTE,
    (out) => rt.formatRouteMessage(message, out),
    'ESRCH',
    `delete ${describeRoute(route)}`,
  );
}

function toRoute(data: Buffer): Route {
  const { data: header, attrs } = rt.parseRouteMessage(data);
  const family: Family = header.family === AF_INET ? 4 : 6;
  return {
    dst: attrs.dst ? `${bytesToIp(attrs.dst)}/${header.dstLen ?? 0}` : 'default',
    gateway: attrs.gateway ? bytesToIp(attrs.gateway) : undefined,
    linkIndex: attrs.oif,
    src: attrs.prefsrc ? bytesToIp(attrs.prefsrc) : undefined,
    scope: Number(header.scope ?? 0),
    table: attrs.table ?? header.table ?? 0,
    protocol: Number(header.protocol ?? 0),
    metric: attrs.priority,
    family,
  };
}

/** Equivalent to: `ip route show [table T] [dev LINK]` for one family. */
export async function routeList(
  h: Netlink,
  filter: { family?: Family; table?: number; link?: LinkRef } = {},
): Promise<Route[]> {
  const table = filter.table ?? RT_TABLE_MAIN;
  const index = filter.link === undefined ? undefined : await linkIndex(h, filter.link);
  const routes = await h.dump(
    MessageType.GETROUTE,
    (out) =>
      rt.formatRouteMessage(
        { kind: 'route', data: { family: addressFamily(filter.family ?? 4) }, attrs: {} },
        out,
      ),
    toRoute,
    'list routes',
  );
  return routes.filter((r) => r.table === table && (index === undefined || r.linkIndex === index));
}
