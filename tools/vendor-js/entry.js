// What the browser wallet (src/healthnft/api/static/wallet/) takes from npm, bundled into
// one ES module by tools/vendor_js.sh. Keep this list short: every name here is code the
// page trusts with a patient's key.
//
// HPKE (RFC 9180) base mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM: the
// suite of healthnft.vault._primitives. KDF and AEAD run on WebCrypto; X25519 in
// @hpke/dhkem-x25519 (noble-curves code), so it does not depend on WebCrypto's X25519.
export { Aes256Gcm, CipherSuite, HkdfSha256 } from "@hpke/core";
export { DhkemX25519HkdfSha256 } from "@hpke/dhkem-x25519";
// The X25519 public key of a derived private key (what a hospital registers).
export { x25519 } from "@noble/curves/ed25519.js";
// Merkle leaves and nodes are keccak-256 (healthnft.ledger.merkle).
export { keccak_256 } from "@noble/hashes/sha3.js";
