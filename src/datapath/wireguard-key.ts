/**
 * A node's WireGuard key pair: made here (X25519, node:crypto: no program, no key on a command
 * line), kept in one 0600 file in the agent's state dir, never written anywhere else. Keys are
 * WireGuard's text form, base64 of 32 bytes.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { syncDir, writeFileDurable } from '../util/atomic-file.js';

export const WIREGUARD_KEY_FILE = 'wireguard.key';
export const keyFile = (stateDir: string): string => join(stateDir, WIREGUARD_KEY_FILE);
/** A rotation's new key, until it is in force and published: then it replaces the key file. */
export const stagedKeyFile = (stateDir: string): string => join(stateDir, `${WIREGUARD_KEY_FILE}.next`);

/** A WireGuard key's text form: base64 of 32 bytes (44 characters, one "=" of padding). */
export const WIREGUARD_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

export interface KeyPair {
  privateKey: string;
  publicKey: string;
}

// PKCS#8 wrapping of a raw X25519 private key (RFC 8410): node imports keys only in a container.
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

function fromJwk(value: string | undefined): string {
  if (value === undefined) throw new Error('X25519 key export gave no key');
  return Buffer.from(value, 'base64url').toString('base64');
}

/** A fresh key pair (pure apart from the randomness). */
export function generateKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { privateKey: fromJwk(privateKey.export({ format: 'jwk' }).d), publicKey: fromJwk(publicKey.export({ format: 'jwk' }).x) };
}

/** The public key of a private key (pure). */
export function publicKeyOf(privateKey: string): string {
  if (!WIREGUARD_KEY.test(privateKey)) throw new Error('not a WireGuard key (base64 of 32 bytes)');
  const key = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, Buffer.from(privateKey, 'base64')]), format: 'der', type: 'pkcs8' });
  return fromJwk(createPublicKey(key).export({ format: 'jwk' }).x);
}

/**
 * The node's key pair from its state dir, made and stored on first use. A file that holds no
 * usable key is replaced (its old key is of no use to anyone) and `replaced` says so.
 */
export function loadOrCreateKeyPair(stateDir: string): KeyPair & { created: boolean; replaced: boolean } {
  const file = keyFile(stateDir);
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text !== undefined && WIREGUARD_KEY.test(text)) {
    // Only the agent may read it, whoever made the file.
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    return { privateKey: text, publicKey: publicKeyOf(text), created: false, replaced: false };
  }
  const pair = storeNewKeyPair(stateDir);
  return { ...pair, created: true, replaced: text !== undefined };
}

/** Makes a new key pair and stores it, durably, in place of the old one. */
export function storeNewKeyPair(stateDir: string): KeyPair {
  const pair = generateKeyPair();
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileDurable(keyFile(stateDir), pair.privateKey + '\n', 0o600);
  return pair;
}

/** A new key pair written to the staged file (0600), the key file untouched; its public key. */
export function stageNewKeyPair(stateDir: string): string {
  const pair = generateKeyPair();
  writeFileDurable(stagedKeyFile(stateDir), pair.privateKey + '\n', 0o600);
  return pair.publicKey;
}

/** The staged key becomes the node's key (an atomic rename, made durable). */
export function commitStagedKey(stateDir: string): void {
  renameSync(stagedKeyFile(stateDir), keyFile(stateDir));
  syncDir(stateDir);
}

/** Drops a staged key that was not committed (a rotation that failed). */
export function dropStagedKey(stateDir: string): void {
  rmSync(stagedKeyFile(stateDir), { force: true });
}
