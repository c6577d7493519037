/**
 * IPv4 addresses and CIDR blocks, strictly: four decimal octets 0-255 and a prefix 0-32.
 * Shared by the config schema (to reject a bad allow-list entry with a ConfigError naming it)
 * and the outbound admission (to match sources).
 */
export interface Ipv4Cidr {
  base: number;
  mask: number;
}

const DOTTED = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** `a.b.c.d` as an unsigned 32-bit number; undefined unless every octet is 0-255. */
export function ipv4ToInt(s: string): number | undefined {
  const m = DOTTED.exec(s);
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) return undefined;
    n = n * 256 + o;
  }
  return n;
}

/** `a.b.c.d` or `a.b.c.d/n` (n 0-32); undefined when malformed. */
export function parseIpv4Cidr(s: string): Ipv4Cidr | undefined {
  const slash = s.indexOf('/');
  const ip = ipv4ToInt(slash === -1 ? s : s.slice(0, slash));
  if (ip === undefined) return undefined;
  let bits = 32;
  if (slash !== -1) {
    const b = s.slice(slash + 1);
    if (!/^\d{1,2}$/.test(b) || Number(b) > 32) return undefined;
    bits = Number(b);
  }
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return { base: (ip & mask) >>> 0, mask };
}

/** Whether `address` (IPv4, or IPv4-mapped IPv6) lies in `net`. */
export function cidrContains(net: Ipv4Cidr, address: string): boolean {
  const ip = ipv4ToInt(address.replace(/^::ffff:/i, ''));
  return ip !== undefined && (ip & net.mask) >>> 0 === net.base;
}
