// Preload for profiling the CLI (bench only; the product is unchanged):
//   TIDEMARK_TRACE=/path/out.json node -r ./bench/profile/trace.cjs bin/tidemark.js …
// Records, with times since process start: Node's own start-up phases, module loading (count and
// time in require), every QMP command, every child process (qemu-img, qemu-nbd…), fsync calls, and
// the engine steps named in WRAP. Each span is { t, ms, kind, what }. Written as JSON at exit.
'use strict';

const file = process.env.TIDEMARK_TRACE;
if (file) {
  const fs = require('node:fs');
  const cp = require('node:child_process');
  const Module = require('node:module');
  const { performance } = require('node:perf_hooks');
  const spans = [];
  const now = () => performance.now();
  const span = (kind, what, t0) => spans.push({ t: +t0.toFixed(2), ms: +(now() - t0).toFixed(2), kind, what });
  let requireMs = 0;
  let depth = 0;
  let modules = 0;

  /** Wraps fn so that every call (sync or async) becomes a span. */
  const timed = (kind, what, fn) => function wrapped(...args) {
    const t0 = now();
    let r;
    try {
      r = fn.apply(this, args);
    } catch (e) {
      span(kind, `${typeof what === 'function' ? what(args) : what} (threw)`, t0);
      throw e;
    }
    const label = typeof what === 'function' ? what(args) : what;
    if (r && typeof r.then === 'function') return r.then((v) => (span(kind, label, t0), v), (e) => (span(kind, `${label} (failed)`, t0), Promise.reject(e)));
    span(kind, label, t0);
    return r;
  };

  // Child processes: from spawn to exit.
  for (const name of ['execFile', 'spawn']) {
    const orig = cp[name];
    cp[name] = function (cmd, args, ...rest) {
      const t0 = now();
      const child = orig.call(this, cmd, args, ...rest);
      const what = `${cmd} ${(Array.isArray(args) ? args : []).filter((a) => !String(a).startsWith('/')).slice(0, 3).join(' ')}`;
      child.once('exit', () => span('process', what, t0));
      return child;
    };
  }
  for (const name of ['fsyncSync', 'fdatasyncSync']) fs[name] = timed('fsync', name, fs[name]);

  // Engine steps worth seeing on their own: module path suffix → export → (class methods | function).
  const WRAP = {
    'electron/qmp/client.js': { QmpClient: ['execute', 'hmp'], QmpClient$static: ['connect'] },
    'electron/os/atomic-file.js': { syncFileData: true, renameDurable: true },
    'electron/os/early-writeback.js': { startEarlyWriteback: true },
    'electron/engine/backup/checksum.js': { checksumFile: true },
    'electron/engine/backup/qemuimg.js': { imageInfo: true, createQcow2: true, checkImage: true, convertImage: true, compareImages: true },
    'electron/engine/backup/restore.js': { verifyChain: true, restoreTo: true },
    'electron/engine/backup/verify.js': { verifyLayer: true },
    'electron/engine/backup/record.js': { recordLayer: true, writeLogFile: true },
    'electron/engine/qmp-driver/push.js': { runBackup: true },
    'electron/engine/qmp-driver/jobs.js': { JobGroup: ['waitSettled', 'finalizeAll', 'dismissAll'] },
    'electron/engine/pull/copy.js': { copyExtents: true },
    'electron/engine/pull/qcow2-layer.js': { Qcow2LayerFile: ['close'], Qcow2LayerFile$static: ['open'] },
    'electron/engine/pull/layer-copy.js': { LayerCopy: ['run'] },
    'electron/engine/qmp-driver/pull.js': { runPull: true, QmpPullStrategy: ['check', 'setup', 'start', 'transfer', 'finish'] },
    'electron/nbd/qemu-nbd.js': { startQemuNbd: true, stopProcess: true },
    'electron/nbd/client.js': { NbdClient$static: ['connect'], NbdClient: ['extentsIn', 'flush', 'close'] },
    'electron/engine/checkpoints/engine.js': { CheckpointEngine$static: ['open'], CheckpointEngine: ['health', 'vm', 'create', 'delete', 'prepareCreate', 'commitCreate'] },
    'electron/host/service.js': { createService: true },
  };
  const wrapExports = (suffix, exp) => {
    for (const [name, how] of Object.entries(WRAP[suffix])) {
      const isStatic = name.endsWith('$static');
      const target = exp[isStatic ? name.slice(0, -7) : name];
      if (!target) continue;
      if (how === true) {
        exp[name] = timed('step', name, target);
      } else {
        const obj = isStatic ? target : target.prototype;
        for (const m of how) {
          if (typeof obj[m] !== 'function') continue;
          const plain = `${name.replace('$static', '')}.${m}`;
          // A layer's open names its disk's size, so a trace tells a 1 TiB pull from a 1 GiB one.
          const label = m === 'execute' ? (args) => `qmp ${args[0]}` : m === 'hmp' ? 'qmp hmp' : name === 'Qcow2LayerFile$static' ? (args) => `${plain} ${args[1]?.sizeBytes}` : plain;
          obj[m] = timed(m === 'execute' || m === 'hmp' ? 'qmp' : 'step', label, obj[m]);
        }
      }
    }
  };
  // Job status events, at the time QEMU stamped them (wall clock, put on the spans' clock): when a job really ran.
  const traceJobEvents = (QmpClient) => {
    const connect = QmpClient.connect;
    QmpClient.connect = async function (...args) {
      const client = await connect.apply(this, args);
      client.onEvent((e) => {
        if (e.event !== 'JOB_STATUS_CHANGE') return;
        const wallMs = e.timestamp.seconds * 1000 + e.timestamp.microseconds / 1000;
        spans.push({ t: +(now() - (Date.now() - wallMs)).toFixed(2), ms: 0, kind: 'event', what: `job ${e.data.status}` });
      });
      return client;
    };
  };
  const origLoad = Module._load;
  Module._load = function (request, parent, isMain) {
    const t0 = now();
    depth++;
    let exp;
    try {
      exp = origLoad.call(this, request, parent, isMain);
    } finally {
      depth--;
      if (depth === 0) requireMs += now() - t0;
    }
    if (request.startsWith('.') || request.startsWith('/')) {
      let resolved = '';
      try {
        resolved = Module._resolveFilename(request, parent, isMain);
      } catch {
        // not a file
      }
      const suffix = Object.keys(WRAP).find((s) => resolved.endsWith(s));
      if (suffix && !exp.__traced) {
        wrapExports(suffix, exp);
        if (suffix === 'electron/qmp/client.js') traceJobEvents(exp.QmpClient);
        Object.defineProperty(exp, '__traced', { value: true });
      }
    }
    return exp;
  };
  const origCompile = Module.prototype._compile;
  Module.prototype._compile = function (...args) {
    modules++;
    return origCompile.apply(this, args);
  };

  process.on('exit', () => {
    const nt = performance.nodeTiming;
    const out = {
      argv: process.argv.slice(2),
      exitAtMs: +now().toFixed(2),
      // Monotonic µs at t = 0 (as V8's CPU profiles count), so a --cpu-prof of the same process lines up with the spans.
      monotonicOriginUs: Number(process.hrtime.bigint() / 1000n) - Math.round(now() * 1000),
      node: { v8StartMs: nt.v8Start, environmentMs: nt.environment, bootstrapCompleteMs: nt.bootstrapComplete, loopStartMs: nt.loopStart },
      modulesCompiled: modules,
      requireMs: +requireMs.toFixed(2),
      spans,
    };
    fs.writeFileSync(file, JSON.stringify(out, null, 1));
  });
}
