// Compile time of the example function (server/compiler/example.ts) in one
// warm compiler process (server/compiler/compiler.mjs, the one the server
// runs) for a set of asc flags: the median of 20 compiles after 2 unrecorded
// ones, each source made unique by a comment so nothing is cached. It is how
// BENCHMARKS.md compares optimisation levels on the compile side; the run-time
// side is `cargo bench -p server --bench opt_level`.
//
//   node bench/node/compile_flags.mjs --exportRuntime --runtime incremental \
//     --optimizeLevel 0 --shrinkLevel 0 --runPasses inlining --transform json-as/transform
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";

const COMPILES = 20;
const WARM = 2;
const compiler = new URL("../../server/compiler/compiler.mjs", import.meta.url).pathname;
const source = readFileSync(new URL("../../server/compiler/example.ts", import.meta.url), "utf8");
const flags = process.argv.slice(2);
if (flags.length === 0) {
  console.error("usage: node bench/node/compile_flags.mjs <asc flags...>");
  process.exit(2);
}

const child = spawn(process.execPath, [compiler, ...flags], { stdio: ["pipe", "pipe", "ignore"] });
const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
const next = async () => {
  const { value, done } = await lines.next();
  if (done) throw new Error("the compiler process exited (is `npm ci --prefix server/compiler` done?)");
  return JSON.parse(value);
};

const ready = await next();
if (!ready.ready) throw new Error(`the compiler did not start: ${ready.error}`);
const times = [];
let bytes = 0;
for (let i = 0; i < WARM + COMPILES; i++) {
  const started = performance.now();
  child.stdin.write(JSON.stringify({ id: i, source: `${source}\n// ${i} ${Math.random()}\n` }) + "\n");
  const reply = await next();
  if (!reply.ok) throw new Error(reply.error);
  bytes = Buffer.from(reply.wasm, "base64").length;
  if (i >= WARM) times.push(performance.now() - started);
}
child.kill();
times.sort((a, b) => a - b);
const median = times[times.length >> 1];
console.log(`${flags.join(" ")}: median ${median.toFixed(0)} ms, min ${times[0].toFixed(0)} ms, ${bytes} bytes of wasm`);
