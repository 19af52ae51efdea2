// Wake-on-LAN: the magic packet (six 0xFF bytes, then the target MAC sixteen times) sent as a
// UDP broadcast, usually to port 9 (discard) or 7, on the sleeping machine's LAN segment.

import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { WolTarget } from '../config/types.ts';

/** The six bytes of a MAC written aa:bb:cc:dd:ee:ff, aa-bb-…, or aabbccddeeff; undefined if it is not one. */
export function parseMac(mac: string): Buffer | undefined {
  const hex = mac.trim().replace(/[:-]/g, '');
  if (!/^[0-9a-fA-F]{12}$/.test(hex)) return undefined;
  return Buffer.from(hex, 'hex');
}

export function magicPacket(mac: string): Buffer {
  const bytes = parseMac(mac);
  if (bytes === undefined) throw new TypeError(`not a MAC address: ${JSON.stringify(mac)}`);
  const packet = Buffer.alloc(6 + 16 * 6, 0xff);
  for (let i = 0; i < 16; i++) bytes.copy(packet, 6 + i * 6);
  return packet;
}

export type WolSender = (target: WolTarget) => Promise<void>;

/** Sends one magic packet; resolves once the datagram has left. */
export const sendMagicPacket: WolSender = (target) => new Promise((resolve, reject) => {
  const packet = magicPacket(target.mac);
  const socket = createSocket(isIPv6(target.broadcast) ? 'udp6' : 'udp4');
  socket.once('error', (e) => { socket.close(); reject(e); });
  socket.bind(0, () => {
    socket.setBroadcast(true);
    socket.send(packet, target.port, target.broadcast, (err) => {
      socket.close();
      if (err) reject(err);
      else resolve();
    });
  });
});
