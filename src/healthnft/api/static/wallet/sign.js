// A patient's action signed on this device and relayed by the node (issue 14, point 3).
//
// prepare → check → confirm → sign → send:
// 1. POST /api/tx/prepare {action, …} answers the unsigned transaction and one sentence
//    of what it will do (docs/device-signing.md).
// 2. The page does not take the node's word for it: it decodes the prepared `data` with
//    the few contract functions a patient signs (FRAGMENTS) and refuses, signing nothing,
//    unless the function and its main arguments (grantee, token ids, days, ids, policy
//    terms, hospital) are what the patient asked here, and the transaction is for the
//    chain and the contract this device pinned at its first use here (wallet/pins.js).
//    Anything else is a TamperedTxError, and nothing is signed.
// 3. The patient reads the node's sentence and confirms (or not: nothing is signed).
// 4. The key held in this page (an ethers Wallet unlocked from the keystore in IndexedDB)
//    signs; only the signed bytes travel, to POST /api/tx/send.

import { networkFor } from "./pins.js";

/** The contract functions a patient signs here: ConsentManager's, then HealthRecordToken's. */
export const FRAGMENTS = [
  "function share_tokens(address grantee, uint256[] token_ids, uint8 purpose, uint256 expires, bool deidentified_only)",
  "function share_category(address grantee, uint8 category, uint8 purpose, uint256 expires, bool deidentified_only)",
  "function revoke(uint256 grant_id)",
  "function approve(uint256 request_id, bool deidentified_only)",
  "function decline(uint256 request_id)",
  "function add_policy(uint8 grantee_kind, uint8 category, uint8 purpose, uint256 duration, bool deidentified_only, uint256 valid_until)",
  "function remove_policy(uint256 index)",
  "function approve_amendment(uint256 token_id, address issuer)",
  "function transferFrom(address owner, address to, uint256 token_id)",
  "function burn(uint256 token_id)",
];

// As ledger/consent.py codes them on chain.
const PURPOSES = { treatment: 1, research: 2, insurance: 3, "public-health": 4 };
const CATEGORIES = ["laboratory", "vital-signs", "immunization", "condition", "procedure",
  "encounter", "claim", "diagnostic-report", "care-plan", "care-team", "medication", "allergy",
  "imaging", "note", "demographics", "other", "survey", "social-history", "exam", "observation"];
// The kinds a policy may name, as the registry codes them (ledger/client.py KIND_CODES).
const POLICY_KINDS = { hospital: 2, pharma: 3, research: 4, insurer: 5, government: 6 };
// Which contract each function is on: a transaction is for the pinned address of that one.
const ON_TOKEN = new Set(["approve_amendment", "transferFrom", "burn"]);
const DAY = 86400;
// The node computes a grant's expiry from its own clock: allow for clocks apart and a slow
// signer, not for a different number of days.
const SLACK = 3600;
const OTHER_NETWORK = "the node prepared a transaction for another chain or contract than "
  + "the ones this device pinned for this node: nothing was signed";

/** The node prepared a transaction other than the one the patient asked for. Nothing signed. */
export class TamperedTxError extends Error {
  constructor(detail, message) {
    super(message || "the node prepared something else than you asked: nothing was signed");
    this.name = "TamperedTxError";
    this.detail = detail;
  }
}

function lib() {
  const ethers = globalThis.ethers;
  if (!ethers?.Interface) throw new Error("ethers is not loaded (vendor/ethers-6.17.0.umd.min.js)");
  return ethers;
}

const sameAddress = (a, b) => typeof a === "string" && typeof b === "string"
  && a.toLowerCase() === b.toLowerCase();

/** What ``action`` with ``args``, by ``owner``, must call: [function name, check(args)]. */
function expected(action, args, owner) {
  const now = Math.floor(Date.now() / 1000);
  const days = Number(args.days || (action === "add-policy" ? 365 : 30));
  const within = (t, n) => Math.abs(Number(t) - (now + n * DAY)) <= SLACK;
  const expiresOk = (e) => within(e, days);
  const deid = Boolean(args.deidentified_only);
  switch (action) {
    case "share":
      return ["share_tokens", (a) => sameAddress(a.grantee, args.to)
        && a.token_ids.length === args.token_ids.length
        && a.token_ids.every((t, i) => t === BigInt(args.token_ids[i]))
        && Number(a.purpose) === PURPOSES[args.purpose] && expiresOk(a.expires)
        && a.deidentified_only === deid];
    case "share-category":
      return ["share_category", (a) => sameAddress(a.grantee, args.to)
        && Number(a.category) === CATEGORIES.indexOf(args.category) + 1
        && Number(a.purpose) === PURPOSES[args.purpose] && expiresOk(a.expires)
        && a.deidentified_only === deid];
    case "revoke":
      return ["revoke", (a) => a.grant_id === BigInt(args.grant_id)];
    case "approve-request":
      return ["approve", (a) => a.request_id === BigInt(args.request_id)
        && a.deidentified_only === deid];
    case "decline-request":
      return ["decline", (a) => a.request_id === BigInt(args.request_id)];
    case "add-policy": {
      const category = args.category ? CATEGORIES.indexOf(args.category) + 1 : 0;
      if (args.category && category === 0) throw new Error(`unknown category "${args.category}"`);
      const valid = Number(args.valid_days || 365);
      return ["add_policy", (a) => Number(a.grantee_kind) === POLICY_KINDS[args.kind]
        && Number(a.category) === category && Number(a.purpose) === PURPOSES[args.purpose]
        && a.duration === BigInt(days * DAY) && within(a.valid_until, valid)
        && a.deidentified_only === deid];
    }
    case "remove-policy":
      return ["remove_policy", (a) => a.index === BigInt(args.number)];
    case "approve-amendment":
      // The hospital as the page listed it (its address), not as the node resolves its name.
      if (!args.issuer_address) throw new Error("approve-amendment needs the hospital's address");
      return ["approve_amendment", (a) => a.token_id === BigInt(args.token_id)
        && sameAddress(a.issuer, args.issuer_address)];
    case "transfer":
      return ["transferFrom", (a) => sameAddress(a.owner, owner) && sameAddress(a.to, args.to)
        && a.token_id === BigInt(args.token_id)];
    case "burn":
      return ["burn", (a) => a.token_id === BigInt(args.token_id)];
    default:
      throw new Error(`this page does not sign "${action}"`);
  }
}

/**
 * Throw TamperedTxError unless ``tx`` (as /api/tx/prepare answers it) calls what the
 * patient asked: the function of ``action`` with ``args``, from ``owner``, paying nothing;
 * and unless it is for the pinned ``network``'s chain and the contract of
 * that function ({chainId, token, consent}, wallet/pins.js).
 */
export function checkPrepared(tx, action, args, owner, network) {
  const [name, matches] = expected(action, args, owner);
  if (!network) throw new Error("no pinned network to check the transaction against");
  let chainId = null;
  try { chainId = BigInt(tx.chainId); } catch (_e) { chainId = null; }
  if (chainId === null || chainId !== BigInt(network.chainId)) {
    throw new TamperedTxError(`chain id ${tx.chainId}, not ${network.chainId}`, OTHER_NETWORK);
  }
  const contract = ON_TOKEN.has(name) ? network.token : network.consent;
  if (!contract || !sameAddress(tx.to, contract)) {
    throw new TamperedTxError(`${name} to ${tx.to}, not ${contract}`, OTHER_NETWORK);
  }
  let call = null;
  try {
    call = new (lib().Interface)(FRAGMENTS).parseTransaction({ data: tx.data, value: 0n });
  } catch (_e) { call = null; }
  if (!call) throw new TamperedTxError("not a patient's action");
  if (call.name !== name) throw new TamperedTxError(`${call.name} instead of ${name}`);
  if (BigInt(tx.value || 0) !== 0n) throw new TamperedTxError("a payment attached");
  const named = {};
  call.fragment.inputs.forEach((input, i) => { named[input.name] = call.args[i]; });
  if (!matches(named)) throw new TamperedTxError(`${name} with other arguments`);
}

/** The prepared fields as ethers 6 signs them (EIP-1559, `gasLimit` for `gas`). */
export function ethersTx(tx) {
  return {
    type: 2, to: tx.to, data: tx.data, value: BigInt(tx.value || 0),
    gasLimit: BigInt(tx.gas), maxFeePerGas: BigInt(tx.maxFeePerGas),
    maxPriorityFeePerGas: BigInt(tx.maxPriorityFeePerGas), nonce: Number(tx.nonce),
    chainId: BigInt(tx.chainId),
  };
}

/**
 * Prepare, check, confirm, sign and relay one action. Answers /api/tx/send's result, or
 * null when the patient did not confirm (nothing signed, nothing sent). ``expect`` adds
 * what the check needs beyond what the node is sent (the hospital's address when the
 * node is given its name).
 * @param {{api: Function, wallet: any, action: string, args: object, expect?: object,
 *          confirm: (prompt: string) => Promise<boolean>, progress?: (text: string) => void}} o
 */
export async function signAndSend({ api, wallet, action, args, expect, confirm, progress }) {
  const step = progress || (() => {});
  step("Preparing the transaction at the node…");
  const network = await networkFor(api);
  const prepared = await api("POST", "/api/tx/prepare", { action, ...args });
  checkPrepared(prepared.tx, action, { ...args, ...expect }, wallet.address, network);
  if (!(await confirm(prepared.prompt))) return null;
  step("Signing on this device…");
  const raw = await wallet.signTransaction(ethersTx(prepared.tx));
  step("Sending the signed transaction and waiting for the chain…");
  return api("POST", "/api/tx/send", { raw });
}
