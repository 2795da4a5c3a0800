// Long-lived AssemblyScript compiler process, driven by server/src/compile/asc.rs.
//
// Usage: PROJECTNIL_MAX_MODULE_BYTES=n PROJECTNIL_MAX_DIAGNOSTICS_CHARS=n node compiler.mjs <asc flags...>
// (server/src/compile/mod.rs: the limits, and ASC_FLAGS,
// which also keys the content cache on them).
//
// Protocol (JSON lines):
//   startup  -> {"ready":true,"compilerVersion":"assemblyscript X; json-as Y"}
//               or {"ready":false,"error":"..."} when the toolchain cannot be loaded
//   stdin    <- {"id":<number>,"source":"<AssemblyScript source>"}
//   stdout   -> {"id":n,"ok":true,"wasm":"<base64>"} | {"id":n,"ok":false,"error":"<diagnostics>"}
//
// The user's source is held in memory as the entry file `index.ts`; library files
// come from node_modules; the .wasm output is captured in memory (no temp files).
// Requests are handled strictly one at a time. Nothing but protocol lines is
// written to stdout: all console output (compiler, binaryen, transform) goes to stderr.

import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";

const COMPILER_DIR = path.dirname(fileURLToPath(import.meta.url));
const ENTRY = "index.ts";
const OUT = "index.wasm";
// The transform the flags name is loaded once below and handed to asc as a
// class, so it is not passed on as a flag.
const FLAGS = [...withoutTransforms(process.argv.slice(2)), "--noColors"];
function withoutTransforms(flags) {
  return flags.filter((flag, i) => flag !== "--transform" && flags[i - 1] !== "--transform");
}

// ---- stdout discipline ------------------------------------------------------
// Keep the real stdout writer for protocol lines and send everything else to stderr.
const protocolWrite = process.stdout.write.bind(process.stdout);
const toStderr = (...args) => {
  process.stderr.write(args.map((a) => (typeof a === "string" ? a : String(a))).join(" ") + "\n");
};
console.log = toStderr;
console.info = toStderr;
console.debug = toStderr;
console.warn = toStderr;
process.stdout.write = (chunk, encoding, cb) => process.stderr.write(chunk, encoding, cb);

function send(obj) {
  protocolWrite(JSON.stringify(obj) + "\n");
}

// Limits set by the server (server/src/compile/mod.rs): a larger module is a
// compile error, and diagnostics are cut at this many characters.
const MAX_MODULE_BYTES = limit("PROJECTNIL_MAX_MODULE_BYTES");
const MAX_DIAGNOSTICS_CHARS = limit("PROJECTNIL_MAX_DIAGNOSTICS_CHARS");

function limit(name) {
  const value = Number(process.env[name]);
  if (!Number.isSafeInteger(value) || value <= 0) {
    send({ ready: false, error: `${name} must be set to a positive integer` });
    process.exit(2);
  }
  return value;
}

// json-as reads JSON_* environment variables (debug output, files written next
// to the source, code generation modes). Output must depend on the source only.
for (const key of Object.keys(process.env)) if (key.startsWith("JSON_")) delete process.env[key];

// Everything relative (asconfig lookup, node_modules resolution, json-as's import
// rewriting) is resolved against the compiler directory, whatever the caller's cwd.
process.chdir(COMPILER_DIR);

if (FLAGS.length === 1) {
  send({ ready: false, error: "compiler.mjs needs the compiler flags as arguments (the server passes ASC_FLAGS)" });
  process.exit(2);
}

let asc;
let Transformer;
let compilerVersion;
try {
  const require = createRequire(path.join(COMPILER_DIR, "package.json"));
  const version = (pkg) =>
    JSON.parse(readFileSync(path.join(COMPILER_DIR, "node_modules", pkg, "package.json"), "utf8")).version;
  compilerVersion = `assemblyscript ${version("assemblyscript")}; json-as ${version("json-as")}`;
  asc = (await import("assemblyscript/asc")).default;
  // Resolved from this directory, so `--transform json-as/transform` works whatever the cwd.
  Transformer = (await import(pathToFileURL(require.resolve("json-as/transform")).href)).default;
} catch (err) {
  const missing = err && (err.code === "ERR_MODULE_NOT_FOUND" || err.code === "MODULE_NOT_FOUND" || err.code === "ENOENT");
  send({
    ready: false,
    error: missing
      ? `the AssemblyScript toolchain is not installed in ${COMPILER_DIR}: run \`npm ci --prefix server/compiler\` (${err.message})`
      : `failed to load the AssemblyScript toolchain: ${err && err.stack ? err.stack : err}`,
  });
  process.exit(3);
}

// ---- diagnostics cleanup ----------------------------------------------------
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;
const ABS_PREFIXES = [pathToFileURL(COMPILER_DIR).href + "/", COMPILER_DIR + path.sep];

/** Makes asc's (already colourless) output readable and free of absolute paths. */
function clean(text) {
  let t = String(text).replace(ANSI, "");
  for (const p of ABS_PREFIXES) t = t.split(p).join("");
  // Any remaining absolute path into a node_modules tree becomes relative.
  t = t.replace(/(?:file:\/\/)?\/[^\s:'"()]*?\/node_modules\//g, "node_modules/");
  // asc writes locations as `in index.ts(3,10)`; use the conventional `at index.ts:3:10`.
  t = t.replace(/\bin ([^\s()]+)\((\d+),(\d+)\)/g, "at $1:$2:$3");
  // Drop asc's summary lines (`FAILURE 2 compile error(s)`); other FAILUREs are
  // errors thrown by the compiler or the json-as transform.
  t = t.replace(/^FAILURE \d+ [a-zA-Z]+ error\(s\)\s*$/gm, "");
  t = t.replace(/^FAILURE (?:Error: )?/gm, "ERROR: ");
  return t.replace(/[ \t]+$/gm, "").replace(/\n{3,}/g, "\n\n").trim();
}

// ---- one compile --------------------------------------------------------------
const ENTRY_PATH = path.join(COMPILER_DIR, ENTRY);
const LIBRARY_ROOT = path.join(COMPILER_DIR, "node_modules") + path.sep;
// Fields asc assigns to the transform class's prototype for each compile; cleared
// afterwards so the finished Program (hundreds of MB) can be garbage collected.
const TRANSFORM_CONTEXT = ["program", "binaryen", "baseDir", "stdout", "stderr", "log", "readFile", "writeFile", "listFiles"];

async function compile(source) {
  let wasm = null;
  let diagnostics = "";
  let dropped = 0;
  const stderr = asc.createMemoryStream((chunk) => {
    const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    // Keep what can be shown (cleaning shortens it a little) and count the rest.
    if (diagnostics.length < 2 * MAX_DIAGNOSTICS_CHARS) diagnostics += text;
    else dropped += text.length;
  });
  const stdout = asc.createMemoryStream((chunk) => process.stderr.write(chunk));
  let result;
  try {
    result = await asc.main([ENTRY, "--outFile", OUT, ...FLAGS], {
      stdout,
      stderr,
      // A new Transformer instance per compile (asc instantiates the class).
      transforms: [Transformer],
      readFile(filename, baseDir) {
        const full = path.resolve(baseDir, filename);
        if (full === ENTRY_PATH) return source;
        // User code may import packages (json-as), never arbitrary files on disk.
        if (!full.startsWith(LIBRARY_ROOT)) return null;
        try {
          return readFileSync(full, "utf8");
        } catch {
          return null;
        }
      },
      writeFile(filename, contents) {
        if (path.basename(filename) === OUT) wasm = contents;
      },
      listFiles() {
        return []; // only used for --lib / --path folders, which are not passed
      },
    });
  } finally {
    for (const k of TRANSFORM_CONTEXT) delete Transformer.prototype[k];
  }
  if (result.error || wasm == null) {
    let text = clean(diagnostics);
    if (!text && result.error) text = clean("ERROR: " + (result.error.message || result.error.stack || String(result.error)));
    if (!text) text = "ERROR: the compiler produced no output";
    if (text.length > MAX_DIAGNOSTICS_CHARS || dropped > 0) {
      const more = Math.max(0, text.length - MAX_DIAGNOSTICS_CHARS) + dropped;
      text = `${text.slice(0, MAX_DIAGNOSTICS_CHARS)}\n… (${more} more characters of diagnostics)`;
    }
    return { ok: false, error: text };
  }
  if (wasm.length > MAX_MODULE_BYTES) {
    return {
      ok: false,
      error:
        `ERROR: the compiled module is ${wasm.length} bytes; the limit is ${MAX_MODULE_BYTES} bytes. ` +
        "Static data counts toward it (memory.data(n), large constant arrays and strings): allocate at run time instead.",
    };
  }
  return { ok: true, wasm: Buffer.from(wasm).toString("base64") };
}

// ---- warm-up ------------------------------------------------------------------
// The first compile in a process is ~3x slower than later ones (cold JIT). Pay
// that before reporting ready, and check the toolchain works end to end.
const WARM_UP = readFileSync(new URL("./example.ts", import.meta.url), "utf8");
{
  const started = performance.now();
  let warm;
  try {
    warm = await compile(WARM_UP);
  } catch (err) {
    warm = { ok: false, error: String(err && err.stack ? err.stack : err) };
  }
  if (!warm.ok) {
    send({ ready: false, error: `the warm-up compile failed: ${warm.error}` });
    process.exit(3);
  }
  process.stderr.write(`compiler.mjs: warm-up compile in ${Math.round(performance.now() - started)} ms\n`);
}

// ---- request loop (sequential) -------------------------------------------------
send({ ready: true, compilerVersion });

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (!line.trim()) continue;
  let req;
  try {
    req = JSON.parse(line);
  } catch (err) {
    process.stderr.write(`compiler.mjs: ignoring malformed request line: ${err.message}\n`);
    continue;
  }
  const id = req && typeof req.id === "number" ? req.id : null;
  if (id === null || typeof req.source !== "string") {
    send({ id, ok: false, error: "protocol error: expected {\"id\":<number>,\"source\":<string>}" });
    continue;
  }
  let response;
  const started = performance.now();
  try {
    response = await compile(req.source);
  } catch (err) {
    response = { ok: false, error: clean(err && err.stack ? err.stack : String(err)) };
  }
  send({ id, ...response });
  const ms = Math.round(performance.now() - started);
  const rss = Math.round(process.memoryUsage().rss / 1048576);
  process.stderr.write(`compiler.mjs: request ${id} ${response.ok ? "ok" : "failed"} in ${ms} ms (rss ${rss} MiB)\n`);
}
process.exit(0);
