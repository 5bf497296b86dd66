/**
 * Names for sandboxes made by `netctl run` without --name, in Docker's
 * adjective_surname style (moby pkg/namesgenerator), from a shorter list.
 */
import { randomInt } from 'node:crypto';

const ADJECTIVES = [
  'admiring',
  'brave',
  'busy',
  'calm',
  'clever',
  'cool',
  'dazzling',
  'eager',
  'elegant',
  'epic',
  'focused',
  'gallant',
  'gifted',
  'happy',
  'hopeful',
  'jolly',
  'keen',
  'kind',
  'lucid',
  'modest',
  'nifty',
  'optimistic',
  'peaceful',
  'quirky',
  'relaxed',
  'serene',
  'sharp',
  'stoic',
  'tender',
  'vibrant',
  'wizardly',
  'zealous',
];

// Scientists and engineers of networking and computing.
const NAMES = [
  'baran',
  'cerf',
  'clark',
  'davies',
  'dijkstra',
  'floyd',
  'hopper',
  'jacobson',
  'kahn',
  'kleinrock',
  'lamport',
  'liskov',
  'lovelace',
  'metcalfe',
  'mockapetris',
  'perlman',
  'postel',
  'pouzin',
  'ritchie',
  'shannon',
  'stallings',
  'tanenbaum',
  'thompson',
  'torvalds',
  'turing',
  'varghese',
  'wirth',
];

const pick = (list: readonly string[]): string => list[randomInt(list.length)] as string;

/** `brave_perlman`; after the first attempt a digit is added, as Docker does on a clash. */
export function generateName(attempt = 0): string {
  const base = `${pick(ADJECTIVES)}_${pick(NAMES)}`;
  return attempt === 0 ? base : `${base}${randomInt(10)}`;
}
