#!/usr/bin/env node
// Test driver: plays one stream in headless Debian Chromium and prints ONE JSON line.
//
//   node infra/player/play.mjs --player hls|dash|shaka --src URL [--token T] [--keys ORIGIN] [--license URL]
//                              [--seconds 3] [--timeout 60] [--text I] [--audio LANG] [--no-av1] [--no-opus] [--thumbnails URL --thumbnail-at F] [--screenshot FILE]
//
// Serves dist/ (built by `npm run build`) on 127.0.0.1:<random port>, opens
// index.html?player=..&src=..&autoplay=1 in Chromium (process.env.CHROMIUM or
// /usr/bin/chromium) through playwright-core, and waits until the video's
// currentTime >= --seconds with decoded frames and no error, or until an error or
// the timeout. Exit code 0 when ok, 1 otherwise (2 for bad usage).
// --text I turns on caption track I (window.__vodEnableText) once playback runs;
// the result is in "textEnable" and the showing cues in "cues". --audio LANG switches to the audio track of that
// language (window.__vodSelectAudio) once playback runs, then plays --seconds more in it (result: "audioSelect"). --no-av1 makes the page report AV1
// unsupported (MediaSource, MediaCapabilities, canPlayType, EME), as a device without an AV1 decoder; --no-opus
// does the same for Opus (older iPhones, TVs: AAC only);
// "sourceBuffers" lists the MIME types the player created SourceBuffers for. --thumbnails gives the page the
// WebVTT index of the sprite sheets; --thumbnail-at F then moves the mouse over the seek bar at fraction F once
// playback runs and reports the preview it shows ("preview": time, sheet URL, x/y/w/h, whether the sheet loaded).
import { createReadStream, existsSync, statSync } from 'node:fs';
import http from 'node:http';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
const started = Date.now();

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
};

const USAGE = 'usage: node play.mjs --player hls|dash|shaka --src URL [--token T] [--keys ORIGIN] [--license URL] [--seconds 3] [--timeout 60] [--text I] [--audio LANG] [--no-av1] [--no-opus] [--thumbnails URL --thumbnail-at F] [--screenshot FILE]\n' +
  '       node play.mjs --serve [--port 8080]   (only serve dist/ for a browser, until Ctrl-C)';

function usage(message) {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

let opts;
try {
  ({ values: opts } = parseArgs({
    options: {
      player: { type: 'string' },
      src: { type: 'string' },
      token: { type: 'string' },
      keys: { type: 'string' },
      license: { type: 'string' },
      seconds: { type: 'string', default: '3' },
      timeout: { type: 'string', default: '60' },
      screenshot: { type: 'string' },
      text: { type: 'string' },
      audio: { type: 'string' },
      'no-av1': { type: 'boolean' },
      'no-opus': { type: 'boolean' },
      thumbnails: { type: 'string' },
      'thumbnail-at': { type: 'string' },
      serve: { type: 'boolean' },
      port: { type: 'string', default: '0' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  }));
} catch (e) {
  usage(e.message);
}
if (opts.help) {
  process.stdout.write(USAGE + '\n');
  process.exit(0);
}
if (opts.serve) {
  if (!existsSync(join(dist, 'index.html'))) usage('dist/ is not built: run "npm ci && npm run build" in infra/player');
  const server = await serveDist(Number(opts.port) || 0);
  process.stdout.write(`serving ${dist} at http://127.0.0.1:${server.address().port}/index.html\n`);
  await new Promise(() => {});
}
if (!['hls', 'dash', 'shaka'].includes(opts.player)) usage('--player must be hls, dash or shaka');
if (!opts.src) usage('--src is required');
try {
  new URL(opts.src);
} catch {
  usage('--src must be an absolute URL (http://... or https://...)');
}
const seconds = Number(opts.seconds);
const timeoutS = Number(opts.timeout);
if (!(seconds >= 0) || !(timeoutS > 0)) usage('--seconds and --timeout must be numbers');
const textIndex = opts.text === undefined ? null : Number(opts.text);
if (textIndex !== null && !Number.isInteger(textIndex)) usage('--text must be an integer track index');

function serveDist(port = 0) {
  const server = http.createServer((req, res) => {
    let path;
    try {
      path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (path === '/') path = '/index.html';
    const file = normalize(join(dist, path));
    if (!file.startsWith(dist + sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, {
      'content-type': MIME[extname(file)] || 'application/octet-stream',
      'cache-control': 'no-store',
    });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

let server = null;
let browser = null;
let finished = false;
let lastVod = null;
let textEnable = null;
let audioSelect = null;
const consoleErrors = [];
const requestFailures = [];

async function cleanup() {
  const b = browser;
  browser = null;
  if (b) {
    await Promise.race([b.close().catch(() => {}), new Promise((r) => setTimeout(r, 10000))]);
  }
  const s = server;
  server = null;
  if (s) {
    s.closeAllConnections?.();
    await new Promise((r) => s.close(() => r()));
  }
}

async function finish(result) {
  if (finished) return;
  finished = true;
  clearTimeout(hardTimer);
  await cleanup();
  const out = {
    ok: !!result.ok,
    ...result.vod,
    ...(textEnable ? { textEnable } : {}),
    ...(audioSelect ? { audioSelect } : {}),
    player: opts.player,
    src: opts.src,
    error: result.error ?? result.vod?.error ?? null,
    consoleErrors,
    requestFailures,
    elapsedMs: Date.now() - started,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(out.ok ? 0 : 1);
}

// Last resort if Chromium or playwright hangs: report and exit anyway.
const hardTimer = setTimeout(() => {
  finish({ ok: false, error: `hard timeout after ${timeoutS + 30}s`, vod: lastVod });
}, (timeoutS + 30) * 1000);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => finish({ ok: false, error: `interrupted by ${sig}`, vod: lastVod }));
}

async function main() {
  if (!existsSync(join(dist, 'index.html'))) {
    return { ok: false, error: `missing ${join(dist, 'index.html')}: run "npm ci && npm run build" in infra/player` };
  }
  const { chromium } = await import('playwright-core');
  server = await serveDist();
  const port = server.address().port;

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    // playwright's own "headless" would add plain --headless and --mute-audio; we pass the flags ourselves.
    headless: false,
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
    timeout: 30000,
  });
  const page = await browser.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error' && consoleErrors.length < 50) consoleErrors.push(msg.text().slice(0, 500));
  });
  page.on('pageerror', (err) => {
    if (consoleErrors.length < 50) consoleErrors.push(`pageerror: ${String(err.message || err).slice(0, 500)}`);
  });
  page.on('requestfailed', (req) => {
    if (requestFailures.length < 50) requestFailures.push(`${req.failure()?.errorText || 'failed'} ${req.url().slice(0, 300)}`);
  });
  page.on('response', (res) => {
    if (res.status() >= 400 && requestFailures.length < 50) requestFailures.push(`HTTP ${res.status()} ${res.url().slice(0, 300)}`);
  });

  // Every SourceBuffer's MIME type is recorded (what the player really fed the decoders); with --no-av1 (--no-opus)
  // the page reports AV1 (Opus) unsupported everywhere a player asks, as a device without that decoder does.
  const blocked = [...(opts['no-av1'] ? ['av01'] : []), ...(opts['no-opus'] ? ['opus'] : [])];
  await page.addInitScript((blocked) => {
    const isBlocked = (t) => blocked.some((c) => String(t || '').toLowerCase().includes(c));
    window.__vodSourceBuffers = [];
    for (const MS of [window.MediaSource, window.ManagedMediaSource].filter(Boolean)) {
      const supported = MS.isTypeSupported.bind(MS);
      if (blocked.length) MS.isTypeSupported = (t) => !isBlocked(t) && supported(t);
      const add = MS.prototype.addSourceBuffer;
      MS.prototype.addSourceBuffer = function (t) {
        if (isBlocked(t)) throw new DOMException(`${t} is not supported`, 'NotSupportedError');
        window.__vodSourceBuffers.push(String(t));
        return add.call(this, t);
      };
    }
    if (window.SourceBuffer && SourceBuffer.prototype.changeType) {
      const change = SourceBuffer.prototype.changeType;
      SourceBuffer.prototype.changeType = function (t) {
        if (isBlocked(t)) throw new DOMException(`${t} is not supported`, 'NotSupportedError');
        window.__vodSourceBuffers.push(String(t));
        return change.call(this, t);
      };
    }
    if (!blocked.length) return;
    const canPlay = HTMLMediaElement.prototype.canPlayType;
    HTMLMediaElement.prototype.canPlayType = function (t) { return isBlocked(t) ? '' : canPlay.call(this, t); };
    const mc = navigator.mediaCapabilities;
    if (mc && mc.decodingInfo) {
      const info = mc.decodingInfo.bind(mc);
      mc.decodingInfo = (c) => (c && ((c.video && isBlocked(c.video.contentType)) || (c.audio && isBlocked(c.audio.contentType)))
        ? Promise.resolve({ supported: false, smooth: false, powerEfficient: false })
        : info(c));
    }
    if (navigator.requestMediaKeySystemAccess) {
      const request = navigator.requestMediaKeySystemAccess.bind(navigator);
      const keep = (caps) => (caps ? caps.filter((x) => !isBlocked(x.contentType)) : caps);
      navigator.requestMediaKeySystemAccess = (system, configs) => request(system, (configs || []).map((c) => ({
        ...c,
        ...(c.videoCapabilities ? { videoCapabilities: keep(c.videoCapabilities) } : {}),
        ...(c.audioCapabilities ? { audioCapabilities: keep(c.audioCapabilities) } : {}),
      })).filter((c) => (!c.videoCapabilities || c.videoCapabilities.length)
        && (!c.audioCapabilities || c.audioCapabilities.length)));
    }
  }, blocked);

  const q = new URLSearchParams({ player: opts.player, src: opts.src, autoplay: '1' });
  if (opts.token) q.set('token', opts.token);
  if (opts.keys) q.set('keys', opts.keys);
  if (opts.license) q.set('license', opts.license);
  if (opts.thumbnails) q.set('thumbnails', opts.thumbnails);
  const url = `http://127.0.0.1:${port}/index.html?${q}`;
  await page.goto(url, { waitUntil: 'load', timeout: timeoutS * 1000 });

  const deadline = started + timeoutS * 1000;
  let result;
  for (;;) {
    const vod = await page.evaluate(() => (window.__vod
      ? JSON.parse(JSON.stringify({ ...window.__vod, sourceBuffers: window.__vodSourceBuffers || [] }))
      : null));
    if (vod) lastVod = vod;
    if (vod && vod.state === 'error') {
      result = { ok: false, vod };
      break;
    }
    if (vod && textIndex !== null && !textEnable && vod.state === 'playing') {
      textEnable = { index: textIndex, ok: await page.evaluate((i) => window.__vodEnableText(i), textIndex) };
      if (!textEnable.ok) {
        result = { ok: false, vod, error: `__vodEnableText(${textIndex}) failed (text tracks: ${JSON.stringify(vod.tracks.text)})` };
        break;
      }
      continue;
    }
    if (vod && opts.audio !== undefined && !audioSelect && vod.state === 'playing') {
      audioSelect = { language: opts.audio, at: vod.currentTime, ok: await page.evaluate((l) => window.__vodSelectAudio(l), opts.audio) };
      if (!audioSelect.ok) {
        result = { ok: false, vod, error: `__vodSelectAudio(${opts.audio}) failed (audio languages: ${JSON.stringify(vod.tracks.audioLanguages)})` };
        break;
      }
      continue;
    }
    const audioDone = !audioSelect || (vod && vod.tracks.audioActive === audioSelect.language && vod.currentTime >= audioSelect.at + seconds);
    if (vod && vod.currentTime >= seconds && vod.decodedFrames > 0 && audioDone) {
      result = { ok: true, vod };
      if (opts['thumbnail-at'] !== undefined) {
        // A real pointer over the seek bar; the preview's sheet must load.
        const at = Math.max(0, Math.min(1, parseFloat(opts['thumbnail-at'])));
        const box = await page.locator('#seekbar').boundingBox();
        if (!box) { result = { ok: false, vod, error: 'no seek bar on the page' }; break; }
        await page.mouse.move(box.x + box.width * at, box.y + box.height / 2, { steps: 4 });
        const until = Date.now() + 5000;
        let preview = null;
        while (Date.now() < until) {
          preview = await page.evaluate(() => window.__vod.preview && { ...window.__vod.preview });
          if (preview && preview.loaded) break;
          await page.mouse.move(box.x + box.width * at + 1, box.y + box.height / 2);
          await new Promise((r) => setTimeout(r, 200));
        }
        const thumbs = await page.evaluate(() => window.__vod.thumbnails);
        result = { ok: !!(preview && preview.loaded), vod: { ...vod, preview, thumbnails: thumbs },
          ...(preview && preview.loaded ? {} : { error: `no thumbnail preview loaded (${JSON.stringify({ preview, thumbs })})` }) };
      }
      break;
    }
    if (vod && vod.ended) {
      result = { ok: false, vod, error: `stream ended at ${vod.currentTime}s before --seconds ${seconds}` };
      break;
    }
    if (Date.now() > deadline) {
      result = { ok: false, vod, error: `timeout after ${timeoutS}s (state ${vod ? vod.state : 'no __vod'}, currentTime ${vod ? vod.currentTime : 0}, decodedFrames ${vod ? vod.decodedFrames : 0})` };
      break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  if (opts.screenshot) {
    await page.screenshot({ path: opts.screenshot, fullPage: true }).catch((e) => consoleErrors.push(`screenshot failed: ${e.message}`));
  }
  return result;
}

main()
  .then((r) => finish(r))
  .catch((e) => finish({ ok: false, error: `driver: ${String(e && e.message ? e.message : e).split('\n')[0]}`, vod: lastVod }));
