// The patient's key on the device: create, import, export, and keep it encrypted.
//
// The account secret is a secp256k1 key (ethers 6, loaded by the page from
// /static/vendor/ethers-6.17.0.umd.min.js as the global `ethers`). A wallet created here has
// a BIP-39 recovery phrase (12 words, path m/44'/60'/0'/0/0); one imported from a CLI
// keystore has none (the CLI's keys are random, not phrase-derived). The X25519
// encryption key is derived from the same secret exactly as the CLI derives it
// (crypto.encryptionKey), so a wallet made in the page opens its records in the CLI and
// back.
//
// At rest the secret exists only as an Ethereum keystore v3 (scrypt + AES-128-CTR, the
// file `healthnft` and eth_account read), in IndexedDB; never in localStorage, never in
// clear. Errors a patient can meet each have their own class and one plain message.

import { bytes, didPublicKey, encryptionKey, toHex } from "./crypto.js";

const DB_NAME = "healthnft-wallet";
const STORE = "wallets";

function ethersLib() {
  const lib = globalThis.ethers;
  if (!lib?.Wallet) throw new Error("ethers is not loaded (vendor/ethers-6.17.0.umd.min.js)");
  return lib;
}

/** The passphrase does not open this keystore. Nothing was changed. */
export class WrongPassphraseError extends Error {
  constructor(address) {
    super(`wrong passphrase for the wallet ${address ?? ""}`.trim());
    this.name = "WrongPassphraseError";
  }
}

/** The keystore file or the stored wallet is not a readable keystore v3. */
export class CorruptWalletError extends Error {
  constructor(what) {
    super(`${what} is damaged or is not an Ethereum keystore v3: import it again or recover`);
    this.name = "CorruptWalletError";
  }
}

/** No wallet for this address is kept on this device. */
export class MissingWalletError extends Error {
  constructor(address) {
    super(`no wallet for ${address} on this device: import its keystore or phrase`);
    this.name = "MissingWalletError";
  }
}

/** The recovery phrase is not a valid BIP-39 English phrase. */
export class InvalidPhraseError extends Error {
  constructor() {
    super("this is not a valid recovery phrase (12 to 24 English BIP-39 words)");
    this.name = "InvalidPhraseError";
  }
}

/** @typedef {import("ethers").Wallet | import("ethers").HDNodeWallet} EthersWallet */

/** A new wallet, its secret from the page's random generator (crypto.getRandomValues). */
export function createWallet() {
  return ethersLib().Wallet.createRandom();
}

/**
 * The wallet a BIP-39 phrase gives (the same address in every Ethereum wallet and in
 * eth_account's Account.from_mnemonic).
 * @param {string} phrase
 */
export function importPhrase(phrase) {
  const words = String(phrase).trim().toLowerCase().split(/\s+/).join(" ");
  try {
    return ethersLib().Wallet.fromPhrase(words);
  } catch {
    throw new InvalidPhraseError();
  }
}

/**
 * The wallet's recovery phrase, or null for a key that was never phrase-derived.
 * @param {EthersWallet} wallet
 * @returns {string|null}
 */
export function phraseOf(wallet) {
  return wallet.mnemonic?.phrase ?? null;
}

/**
 * Encrypt the wallet into a keystore v3 JSON text (ethers' scrypt cost, n = 2^17).
 * @param {EthersWallet} wallet
 * @param {string} passphrase not empty
 * @param {(fraction: number) => void} [progress]
 * @returns {Promise<string>}
 */
export async function exportKeystore(wallet, passphrase, progress) {
  if (!passphrase) throw new Error("an empty passphrase is not allowed");
  return wallet.encrypt(passphrase, progress);
}

/**
 * Open a keystore v3 JSON text (one made here, by the CLI or by any Ethereum wallet).
 * @param {string} json
 * @param {string} passphrase
 * @param {(fraction: number) => void} [progress]
 * @returns {Promise<EthersWallet>}
 * @throws {WrongPassphraseError|CorruptWalletError}
 */
export async function importKeystore(json, passphrase, progress) {
  const lib = ethersLib();
  let address;
  try {
    if (!lib.isKeystoreJson(json)) throw new Error("not a keystore");
    const stated = JSON.parse(json).address;
    address = stated ? lib.getAddress("0x" + String(stated).replace(/^0x/, "")) : undefined;
  } catch {
    throw new CorruptWalletError("this keystore file");
  }
  try {
    return await lib.Wallet.fromEncryptedJson(json, passphrase, progress);
  } catch (err) {
    if (err?.code === "INVALID_ARGUMENT" && err?.argument === "password") {
      throw new WrongPassphraseError(address);
    }
    throw new CorruptWalletError("this keystore file");
  }
}

/**
 * What others need to send this wallet records: its address and X25519 public key
 * (what a hospital registers), and the private key that opens them (kept in memory only).
 * @param {EthersWallet} wallet
 * @returns {Promise<{address: string, encPublicKey: string, encPrivateKey: Uint8Array}>}
 */
export async function identity(wallet) {
  const { privateKey, publicKey } = await encryptionKey(bytes(wallet.privateKey));
  return { address: wallet.address, encPublicKey: toHex(publicKey), encPrivateKey: privateKey };
}

/**
 * The wallet's membership card: its application to the network, signed by its key, as
 * the ``healthnft:`` link a hospital or enrolment office registers it from (`healthnft
 * participant admit LINK`). Public values only - address, encryption and did:key public
 * keys, the network it is for - the same document and link as the CLI's `wallet card`
 * (healthnft.consortium.membership: the signed text is the compact, key-sorted JSON of
 * the fields below, signed as an EIP-191 message).
 * @param {EthersWallet} wallet
 * @param {{format: string, link_version: string, chain_id: number, registry: string}} terms
 *   the node's GET /api/network/membership
 * @returns {Promise<string>}
 */
export async function membershipLink(wallet, terms) {
  const { encPublicKey, encPrivateKey } = await identity(wallet);
  encPrivateKey.fill(0);
  const didPublic = toHex(await didPublicKey(bytes(wallet.privateKey)));
  // Keys in sorted order: JSON.stringify keeps insertion order, Python sorts them.
  const signed = { address: wallet.address, chain_id: terms.chain_id, did_public: didPublic,
    enc_public: encPublicKey, format: terms.format, kind: "patient", registry: terms.registry };
  const signature = await wallet.signMessage(JSON.stringify(signed));
  const query = new URLSearchParams({ v: terms.link_version, chain: String(terms.chain_id),
    registry: terms.registry, address: wallet.address, kind: "patient", enc: encPublicKey,
    did: didPublic, sig: signature });
  return `healthnft:apply?${query}`;
}

// -- IndexedDB: one object store, key = address, value = {address, encPublicKey,
// keystore (encrypted JSON text), created}. A tiny wrapper, nothing else kept. --------

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function openDb() {
  const req = globalThis.indexedDB.open(DB_NAME, 1);
  req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "address" });
  return request(req);
}

async function withStore(mode, fn) {
  const db = await openDb();
  try {
    const tx = db.transaction(STORE, mode);
    const done = new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = tx.onabort = () => reject(tx.error ?? new Error("IndexedDB aborted"));
    });
    const result = await request(fn(tx.objectStore(STORE)));
    await done;
    return result;
  } finally {
    db.close();
  }
}

/**
 * Keep the wallet on this device, encrypted under ``passphrase`` (replaces a stored
 * wallet of the same address).
 * @param {EthersWallet} wallet
 * @param {string} passphrase
 * @param {(fraction: number) => void} [progress]
 * @returns {Promise<{address: string, encPublicKey: string}>}
 */
export async function saveWallet(wallet, passphrase, progress) {
  const keystore = await exportKeystore(wallet, passphrase, progress);
  const { address, encPublicKey } = await identity(wallet);
  await withStore("readwrite", (s) => s.put({ address, encPublicKey, keystore, created: Date.now() }));
  return { address, encPublicKey };
}

/**
 * The wallets kept on this device, public parts only.
 * @returns {Promise<Array<{address: string, encPublicKey: string, created: number}>>}
 */
export async function listWallets() {
  const rows = await withStore("readonly", (s) => s.getAll());
  return rows.map(({ address, encPublicKey, created }) => ({ address, encPublicKey, created }));
}

/**
 * The stored keystore text of ``address`` (to export as a file), still encrypted.
 * @param {string} address
 * @returns {Promise<string>}
 * @throws {MissingWalletError}
 */
export async function storedKeystore(address) {
  const row = await withStore("readonly", (s) => s.get(address));
  if (!row) throw new MissingWalletError(address);
  if (typeof row.keystore !== "string") throw new CorruptWalletError("the wallet kept here");
  return row.keystore;
}

/**
 * Unlock the wallet kept on this device for ``address``.
 * @param {string} address
 * @param {string} passphrase
 * @param {(fraction: number) => void} [progress]
 * @returns {Promise<EthersWallet>}
 * @throws {MissingWalletError|WrongPassphraseError|CorruptWalletError}
 */
export async function unlockWallet(address, passphrase, progress) {
  const json = await storedKeystore(address);
  let wallet;
  try {
    wallet = await importKeystore(json, passphrase, progress);
  } catch (err) {
    if (err instanceof CorruptWalletError) throw new CorruptWalletError("the wallet kept here");
    throw err;
  }
  if (wallet.address !== address) throw new CorruptWalletError("the wallet kept here");
  return wallet;
}

/** Forget the wallet of ``address`` on this device (its keystore file is the only copy then). */
export async function removeWallet(address) {
  await withStore("readwrite", (s) => s.delete(address));
}
