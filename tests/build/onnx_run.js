// Helper of tests/build/check_onnx_export.sh: runs a model written by `vitq export-onnx` in ONNX Runtime
// (onnxruntime-node) and compares logits.
//
//   node onnx_run.js prepare IMAGES.idx[.gz] N MEAN STD OUT.npy
//       the first N uint8 images, normalised as vitq does ((pixel / 255 - mean) / std; one channel),
//       as float32 NCHW: the input both vitq and ONNX Runtime then read
//   node onnx_run.js run ORT_DIR MODEL.onnx INPUT.npy OUT.npy [all|disabled]
//       the model's logits on INPUT (graph optimizations: all, ONNX Runtime's default, or disabled)
//   node onnx_run.js compare A.npy B.npy MAX_ABS MIN_TOP1
//       max |A - B| and the fraction of rows whose top-1 class agrees; exit 1 when the difference
//       exceeds MAX_ABS or the agreement is below MIN_TOP1
'use strict';

const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

function readIdxImages(file, n) {
  let buf = fs.readFileSync(file);
  if (buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
  if (buf[0] !== 0 || buf[1] !== 0 || buf[2] !== 8) throw new Error(`${file}: not a uint8 IDX file`);
  const nd = buf[3];
  const dims = [];
  for (let d = 0; d < nd; d++) dims.push(buf.readUInt32BE(4 + 4 * d));
  if (nd !== 3) throw new Error(`${file}: expected [N, H, W] images, got ${nd} dimensions`);
  if (n > dims[0]) throw new Error(`${file}: ${dims[0]} images, ${n} asked for`);
  const per = dims[1] * dims[2];
  return { shape: [n, 1, dims[1], dims[2]], pixels: buf.subarray(4 + 4 * nd, 4 + 4 * nd + n * per) };
}

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf[0] !== 0x93 || buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${file}: not a .npy file`);
  const v2 = buf[6] >= 2;
  const hlen = v2 ? buf.readUInt32LE(8) : buf.readUInt16LE(8);
  const start = v2 ? 12 : 10;
  const header = buf.toString('latin1', start, start + hlen);
  if (!header.includes("'<f4'") || header.includes("'fortran_order': True")) throw new Error(`${file}: not float32, C order`);
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(count);
  const body = buf.subarray(start + hlen, start + hlen + 4 * count);
  for (let i = 0; i < count; i++) data[i] = body.readFloatLE(4 * i);
  return { shape, data };
}

function writeNpy(file, shape, data) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(63 - ((header.length + 10) % 64)) + '\n';
  const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length & 0xff, header.length >> 8]);
  const body = Buffer.alloc(4 * data.length);
  for (let i = 0; i < data.length; i++) body.writeFloatLE(data[i], 4 * i);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}

function prepare(images, n, mean, std, out) {
  const { shape, pixels } = readIdxImages(images, Number(n));
  const m = Math.fround(Number(mean)), s = Math.fround(Number(std));
  const data = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) data[i] = Math.fround(Math.fround(Math.fround(pixels[i] / 255) - m) / s);
  writeNpy(out, shape, data);
}

async function run(ortDir, model, input, out, level) {
  const ort = require(path.resolve(ortDir, 'node_modules', 'onnxruntime-node'));
  const session = await ort.InferenceSession.create(model, {
    graphOptimizationLevel: level || 'all', intraOpNumThreads: 1, interOpNumThreads: 1,
  });
  const x = readNpy(input);
  const result = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) });
  const y = result[session.outputNames[0]];
  writeNpy(out, y.dims, y.data);
}

function argmax(row) {
  let best = 0;
  for (let j = 1; j < row.length; j++) if (row[j] > row[best]) best = j;
  return best;
}

function compare(a, b, maxAbs, minTop1) {
  const x = readNpy(a), y = readNpy(b);
  if (x.shape.join(',') !== y.shape.join(',')) throw new Error(`shapes differ: [${x.shape}] and [${y.shape}]`);
  const [rows, cols] = x.shape;
  let worst = 0, agree = 0, range = 0;
  for (let r = 0; r < rows; r++) {
    const u = x.data.subarray(r * cols, (r + 1) * cols), v = y.data.subarray(r * cols, (r + 1) * cols);
    for (let j = 0; j < cols; j++) {
      worst = Math.max(worst, Math.abs(u[j] - v[j]));
      range = Math.max(range, Math.abs(u[j]));
    }
    if (argmax(u) === argmax(v)) agree++;
  }
  const fraction = agree / rows;
  console.log(`${rows} images: max |logit difference| ${worst.toExponential(3)} (largest |logit| ${range.toFixed(3)}), ` +
    `top-1 agrees on ${agree}/${rows}`);
  return worst <= Number(maxAbs) && fraction >= Number(minTop1);
}

async function main() {
  const [cmd, ...a] = process.argv.slice(2);
  if (cmd === 'prepare' && a.length === 5) return prepare(...a);
  if (cmd === 'run' && (a.length === 4 || a.length === 5)) return run(...a);
  if (cmd === 'compare' && a.length === 4) {
    if (!compare(...a)) process.exitCode = 1;
    return undefined;
  }
  throw new Error('usage: onnx_run.js prepare|run|compare ... (see the comment at the top)');
}

main().catch((e) => {
  console.error(`onnx_run.js: ${e.message}`);
  process.exitCode = 2;
});
