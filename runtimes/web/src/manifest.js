// A bundle, fetched and verified: manifest.json (schema of export/bundle.py) and every file it
// lists, each checked against its sha256 with crypto.subtle before anything reads a byte.
// The bytes that were hashed are the bytes used: sessions and test vectors come from here.

export const SCHEMA_VERSION = 4; // export/schema/manifest.schema.json (tests/test_schema.py checks it)

export class BundleError extends Error {}

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(buffer) {
  if (!globalThis.crypto?.subtle) {
    throw new BundleError("crypto.subtle is unavailable: open the page from http://127.0.0.1 or https (a secure context)");
  }
  return hex(await crypto.subtle.digest("SHA-256", buffer));
}

async function fetchBytes(url, rel) {
  let response;
  try {
    response = await fetch(url, { cache: "no-store" });
  } catch (e) {
    throw new BundleError(`bundle file ${rel} could not be fetched from ${url} (${e.message})`);
  }
  if (!response.ok) throw new BundleError(`bundle file ${rel} is missing: ${url} answered HTTP ${response.status}`);
  return response.arrayBuffer();
}

/** What this page runs: an ONNX bundle of the current schema (any plan). One line per problem. */
export function checkManifest(m) {
  if (m.schema_version !== SCHEMA_VERSION) {
    throw new BundleError(`manifest schema version ${m.schema_version} is not ${SCHEMA_VERSION}; re-export the bundle with this lrf-export`);
  }
  if (m.target !== "onnx") throw new BundleError(`this is a ${m.target} bundle; the web page runs ONNX bundles (lrf-export --target onnx)`);
  for (const graph of [m.plan?.loop?.graph, m.plan?.end?.graph, ...(m.plan?.edit ? [m.plan.edit.graph] : [])]) {
    if (!m.artifacts?.[graph]) throw new BundleError(`the plan runs a ${graph} graph the manifest does not list; re-export the bundle`);
  }
  if (!m.sampler.schedules || !Object.keys(m.sampler.schedules).length) throw new BundleError("the manifest offers no schedules");
  if (!m.files || !Object.keys(m.files).length) throw new BundleError("the manifest lists no files to verify");
}

/**
 * Load the bundle at ``baseUrl`` (ending in "/"): returns {url, manifest, files: Map(rel -> ArrayBuffer)}.
 * ``onProgress(done, total, rel)`` after each verified file.
 */
export async function loadBundle(baseUrl, onProgress = () => {}) {
  const base = new URL(baseUrl.endsWith("/") ? baseUrl : baseUrl + "/", location.href);
  const manifestUrl = new URL("manifest.json", base);
  let manifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(await fetchBytes(manifestUrl, "manifest.json")));
  } catch (e) {
    if (e instanceof BundleError) throw new BundleError(`${base} is not a bundle: ${e.message}`);
    throw new BundleError(`${manifestUrl} is corrupt (${e.message}); re-export the bundle`);
  }
  checkManifest(manifest);
  const entries = Object.entries(manifest.files);
  const files = new Map();
  let done = 0;
  // Promise.all rejects at the first bad file while the other fetches run on: once one failed,
  // they must not report progress, or the page's "Verifying n/N" would overwrite the error.
  let failed = false;
  await Promise.all(entries.map(async ([rel, digest]) => {
    try {
      const bytes = await fetchBytes(new URL(rel, base), rel);
      const got = await sha256Hex(bytes);
      if (got !== digest) {
        throw new BundleError(`bundle file ${rel} does not match its sha256 in the manifest (tampered or truncated); re-export or re-copy the bundle`);
      }
      files.set(rel, bytes);
      if (!failed) onProgress(++done, entries.length, rel);
    } catch (e) {
      failed = true;
      throw e;
    }
  }));
  return { url: base.href, manifest, files };
}

/** A verified file's bytes (only files the manifest lists and hashes can be read). */
export function fileBytes(bundle, rel) {
  const bytes = bundle.files.get(rel);
  if (!bytes) throw new BundleError(`${rel} is not a verified file of this bundle (the manifest does not hash it)`);
  return bytes;
}
