// ONNX Runtime (onnxruntime-node, CPU) timing of one ONNX model, one JSON object per batch size.
//
//   node bench/bench_ort.js MODEL.onnx IMAGES.npy --ort-dir DIR [--variant fp32|int8] [--batches 8]
//        [--threads 2] [--warmup 1] [--repeats 10] [--max-seconds 60] [--logits OUT.npy]
//
// DIR is where `npm install --prefix DIR onnxruntime-node` put node_modules. Same protocol as
// bench_vitq and bench_torch.py: the first B images, warm-up, timed runs (never fewer than 3), median.
// The session gets intraOpNumThreads = threads, interOpNumThreads 1, sequential execution and every
// graph optimization, ONNX Runtime's settings for a latency-bound single stream.
'use strict';

const fs = require('fs');
const path = require('path');

const MIN_REPEATS = 3;

function parseArgs(argv) {
  const o = { variant: 'fp32', batches: '8', threads: 2, warmup: 1, repeats: 10, maxSeconds: 60, positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) { o.positional.push(a); continue; }
    const v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    const key = a.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in o) && key !== 'ortDir' && key !== 'logits') throw new Error(`unknown option ${a}`);
    o[key] = ['threads', 'warmup', 'repeats', 'maxSeconds'].includes(key) ? Number(v) : v;
  }
  if (o.positional.length !== 2 || !o.ortDir) throw new Error('usage: bench_ort.js MODEL.onnx IMAGES.npy --ort-dir DIR ...');
  return o;
}

// float32 C-order .npy -> { shape, data }
function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.readUInt8(0) !== 0x93 || buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${file}: not .npy`);
  const major = buf.readUInt8(6);
  const hlen = major >= 2 ? buf.readUInt32LE(8) : buf.readUInt16LE(8);
  const start = major >= 2 ? 12 : 10;
  const header = buf.toString('latin1', start, start + hlen);
  if (!header.includes("'<f4'") || header.includes("'fortran_order': True")) throw new Error(`${file}: not float32 C order`);
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const offset = start + hlen;
  const count = shape.reduce((p, d) => p * d, 1);
  const data = new Float32Array(count); // a copy: the file's bytes need not be 4-byte aligned
  data.set(new Float32Array(buf.buffer.slice(buf.byteOffset + offset, buf.byteOffset + offset + 4 * count)));
  return { shape, data };
}

function writeNpy(file, data, shape) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}), }`;
  while ((header.length + 11) % 64) header += ' ';
  header += '\n';
  const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length & 0xff, header.length >> 8]);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

// Restart the kernel's resident high-water mark after loading, as every engine of the benchmark does.
function rssReset() {
  try { fs.writeFileSync('/proc/self/clear_refs', '5'); return true; } catch (e) { return false; }
}

function rssPeakKb() {
  try {
    const m = fs.readFileSync('/proc/self/status', 'latin1').match(/VmHWM:\s+(\d+)/);
    if (m) return Number(m[1]);
  } catch (e) { /* not Linux */ }
  return process.resourceUsage().maxRSS;
}

function median(v) {
  const s = [...v].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const ort = require(path.resolve(o.ortDir, 'node_modules', 'onnxruntime-node'));
  const [modelPath, imagesPath] = o.positional;
  const images = readNpy(imagesPath);
  const perImage = images.shape.slice(1).reduce((p, d) => p * d, 1);

  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(modelPath, {
    executionProviders: ['cpu'],
    intraOpNumThreads: o.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const loadSeconds = Number(process.hrtime.bigint() - t0) * 1e-9;
  const scope = rssReset() ? 'model+forward' : 'process';
  const inputName = session.inputNames[0];
  const outputName = session.outputNames[0];

  const batches = String(o.batches).split(',').map(Number);
  for (let bi = 0; bi < batches.length; bi++) {
    const batch = batches[bi];
    if (batch > images.shape[0]) throw new Error(`${imagesPath} holds ${images.shape[0]} images, batch ${batch} asked`);
    const input = new ort.Tensor('float32', images.data.subarray(0, batch * perImage), [batch, ...images.shape.slice(1)]);
    let out;
    for (let w = 0; w < o.warmup; w++) out = await session.run({ [inputName]: input });
    if (o.logits && bi === 0) {
      const logits = out[outputName];
      writeNpy(o.logits, logits.data, logits.dims);
    }
    const samples = [];
    let spent = 0;
    while (samples.length < o.repeats && (samples.length < MIN_REPEATS || spent < o.maxSeconds)) {
      const s0 = process.hrtime.bigint();
      await session.run({ [inputName]: input });
      const dt = Number(process.hrtime.bigint() - s0) * 1e-9;
      spent += dt;
      samples.push((1e3 * dt) / batch);
    }
    console.log(JSON.stringify({
      engine: 'ort', mode: 'forward', variant: o.variant, model: modelPath, batch, threads: o.threads,
      warmup: o.warmup, runs: samples.length, ms_per_image: median(samples), ms_per_image_min: Math.min(...samples),
      load_seconds: loadSeconds, rss_peak_kb: rssPeakKb(), rss_peak_scope: scope, version: ort.env.versions.node,
      samples_ms_per_image: samples,
    }));
  }
  await session.release();
}

main().catch((e) => { console.error(`bench_ort: ${e.message}`); process.exit(1); });
