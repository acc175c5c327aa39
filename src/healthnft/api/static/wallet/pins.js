// The network this device signs for, pinned at first use (issue 14, point 3).
//
// The page does not take the node's word, at every signature, for which contracts and
// chain a transaction is for. The first time this browser uses a device wallet at this
// node (its first listing after sign-in, or its first signature), the network's chain id
// and the two contracts a patient signs for (ConsentManager, HealthRecordToken) are read
// from GET /api/tx/network and kept here, in IndexedDB; from then on a prepared
// transaction whose chain id or `to` differs is refused and nothing is signed
// (TamperedTxError in wallet/sign.js). Trust on first use, as SSH pins a host key: every
// other source the page can reach (the read-only /rpc window included) is the same node
// answering, so what the page can hold it to is that it never changes its answer.
// IndexedDB is per origin, so the pin is this node's, for every wallet kept here.
// See docs/device-signing.md, section 4.

const DB_NAME = "healthnft-pins";
const STORE = "networks";
const KEY = "network"; // one pin per origin: one origin is one node of one network

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function withStore(mode, fn) {
  const open = globalThis.indexedDB.open(DB_NAME, 1);
  open.onupgradeneeded = () => open.result.createObjectStore(STORE);
  const db = await request(open);
  try {
    const tx = db.transaction(STORE, mode);
    const done = new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = tx.onabort = () => reject(tx.error ?? new Error("IndexedDB aborted"));
    });
    done.catch(() => {});  // awaited below; never an unhandled rejection meanwhile
    const result = await fn(tx.objectStore(STORE));
    await done;
    return result;
  } finally {
    db.close();
  }
}

const isAddress = (a) => typeof a === "string" && /^0x[0-9a-fA-F]{40}$/.test(a);

/** The node's answer as this page keeps it: chain id as a decimal string, addresses lowercase. */
function normal(n) {
  if (!n || !/^[0-9]+$/.test(String(n.chain_id)) || !isAddress(n.token)
      || (n.consent !== null && !isAddress(n.consent))) {
    throw new Error("the node's network description is malformed: nothing was signed");
  }
  return { chainId: String(n.chain_id), token: n.token.toLowerCase(),
    consent: n.consent ? n.consent.toLowerCase() : null };
}

/**
 * The network pinned on this device, or null before the first signature here.
 * @returns {Promise<{chainId: string, token: string, consent: string|null, pinned: number}|null>}
 */
export async function pinned() {
  return (await withStore("readonly", (s) => request(s.get(KEY)))) ?? null;
}

/**
 * The pinned network; at first use, the node's GET /api/tx/network, kept from then on.
 * @param {(method: string, path: string) => Promise<object>} api
 */
export async function networkFor(api) {
  const kept = await pinned();
  if (kept) return kept;
  const pin = { ...normal(await api("GET", "/api/tx/network")), pinned: Date.now() };
  // In one transaction: a pin another tab made meanwhile holds, this one is dropped.
  return withStore("readwrite", async (s) => {
    const first = await request(s.get(KEY));
    if (first) return first;
    await request(s.put(pin, KEY));
    return pin;
  });
}

/** Forget the pin (a network really redeployed): the next signature pins again. */
export async function forget() {
  await withStore("readwrite", (s) => request(s.delete(KEY)));
}
