// The V8 peer of the call-cost benchmark (server/benches/call_cost.rs): the
// same .wasm, the same ABI as the platform (`__new` the input string, write it
// as UTF-16, `__pin`, `handle`, read the returned string, `__unpin`, parse the
// JSON), timed in a loop.
//
//   node call_cost.mjs <module.wasm> <input-json-file> <quick|full>
//
// Prints one JSON object: per-call times in nanoseconds (median over batches)
// for a fresh `WebAssembly.Instance` per call ("fresh", comparable to the
// platform, which instantiates for every execution) and for one instance
// reused for every call ("reuse").
import { readFileSync } from "node:fs";

const [wasmPath, inputPath, mode = "full"] = process.argv.slice(2);
if (!wasmPath || !inputPath) {
  console.error("usage: node call_cost.mjs <module.wasm> <input-json-file> <quick|full>");
  process.exit(2);
}
const input = readFileSync(inputPath, "utf8");
const module = new WebAssembly.Module(readFileSync(wasmPath));

// Every import gets a stub; `env.abort` throws like the platform's does.
const imports = {};
for (const { module: from, name, kind } of WebAssembly.Module.imports(module)) {
  if (kind !== "function") throw new Error(`unsupported import ${from}.${name} (${kind})`);
  imports[from] ??= {};
  imports[from][name] =
    from === "env" && name === "abort"
      ? () => {
          throw new Error("abort");
        }
      : () => 0;
}

const STRING_CLASS_ID = 2;
const decoder = new TextDecoder("utf-16le");

function call(instance, text) {
  const { memory, __new, __pin, __unpin, handle } = instance.exports;
  const ptr = __new(text.length << 1, STRING_CLASS_ID) >>> 0;
  const units = new Uint16Array(memory.buffer, ptr, text.length);
  for (let i = 0; i < text.length; i++) units[i] = text.charCodeAt(i);
  __pin(ptr);
  const out = handle(ptr) >>> 0;
  const buffer = memory.buffer;
  // AssemblyScript keeps the byte length in the object header, 4 bytes before.
  const bytes = new Uint32Array(buffer, out - 4, 1)[0];
  const result = decoder.decode(new Uint8Array(buffer, out, bytes));
  __unpin(ptr);
  return JSON.parse(result);
}

function fresh() {
  return call(new WebAssembly.Instance(module, imports), input);
}

let reused;
function reuse() {
  reused ??= new WebAssembly.Instance(module, imports);
  return call(reused, input);
}

const check = fresh();
if (JSON.stringify(check) !== JSON.stringify(JSON.parse(input))) {
  throw new Error(`echo returned ${JSON.stringify(check)}`);
}

const plan =
  mode === "quick"
    ? { warmup: 2_000, batches: 30, perBatch: 200 }
    : { warmup: 20_000, batches: 100, perBatch: 500 };

function measure(fn) {
  let sink = 0;
  for (let i = 0; i < plan.warmup; i++) sink += fn() ? 1 : 0;
  const perCall = [];
  for (let b = 0; b < plan.batches; b++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < plan.perBatch; i++) sink += fn() ? 1 : 0;
    perCall.push(Number(process.hrtime.bigint() - start) / plan.perBatch);
  }
  if (sink === 0) throw new Error("no results");
  perCall.sort((a, b) => a - b);
  return {
    median_ns: perCall[Math.floor(perCall.length / 2)],
    mean_ns: perCall.reduce((a, b) => a + b, 0) / perCall.length,
    calls: plan.batches * plan.perBatch,
  };
}

console.log(
  JSON.stringify({
    node: process.version,
    v8: process.versions.v8,
    input_bytes: Buffer.byteLength(input),
    fresh: measure(fresh),
    reuse: measure(reuse),
  }),
);
