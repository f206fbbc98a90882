// VOD test page: plays one stream with hls.js, dash.js or shaka-player and
// publishes a machine-readable status on window.__vod (read by play.mjs).
//
// Query parameters:
//   player=hls|dash|shaka   which player library to use (none: only the form)
//   src=URL                 manifest URL (.m3u8 or .mpd), usually on another origin
//   token=JWT               sent as "Authorization: Bearer" on key / licence requests only, and only to the key
//                           server's origin (never to a key URI a playlist points elsewhere)
//   keys=ORIGIN             the key server's origin (default: the licence URL's origin, else the manifest's)
//   license=URL             ClearKey (org.w3.clearkey) licence server for dash.js and shaka
//   autoplay=1              muted autoplay
//   thumbnails=URL          WebVTT index of thumbnail sprite sheets (`sheet.jpg#xywh=x,y,w,h` cues): the seek bar
//                           under the video shows the tile of the time under the pointer
'use strict';

(function () {
  const SCRIPTS = { hls: 'hls.min.js', dash: 'dash.all.min.js', shaka: 'shaka-player.compiled.js' };
  const MAX_EVENTS = 200;

  const params = new URLSearchParams(location.search);
  const playerName = params.get('player') || '';
  const src = params.get('src') || '';
  const token = params.get('token') || '';
  const license = params.get('license') || '';
  const autoplay = params.get('autoplay') === '1';
  const thumbnails = params.get('thumbnails') || '';
  const keyOrigin = originOf(params.get('keys') || license || src);

  const video = document.getElementById('video');
  const t0 = performance.now();

  const status = {
    player: playerName || null,
    version: null,
    state: playerName ? 'loading' : 'idle',
    error: null,
    currentTime: 0,
    duration: null,
    paused: true,
    ended: false,
    readyState: 0,
    decodedFrames: 0,
    droppedFrames: 0,
    audioDecodedBytes: null, // Chromium only (webkitAudioDecodedByteCount)
    width: 0,
    height: 0,
    tracks: { video: 0, audio: 0, audioLanguages: [], audioActive: null, text: [], textDetails: [], codecs: { video: [], audio: [] } },
    cues: [], // text of the active cues of the showing text tracks of the video element
    thumbnails: null, // { cues, error } once the WebVTT index is read
    preview: null, // the seek-bar preview shown last: { time, url, x, y, w, h, loaded }
    events: [],
  };
  window.__vod = status;

  // Player-specific hooks, filled in by the start functions below.
  let refreshTracks = () => {};
  let enableText = null; // (i) => boolean
  let selectAudio = null; // (language) => boolean

  function log(type, detail) {
    const ev = { t: Math.round(performance.now() - t0), type };
    if (detail !== undefined) ev.detail = detail;
    status.events.push(ev);
    if (status.events.length > MAX_EVENTS) status.events.splice(0, status.events.length - MAX_EVENTS);
  }

  function fail(message) {
    message = String(message);
    log('error', message);
    if (status.state !== 'error') {
      status.state = 'error';
      status.error = message;
    }
    render();
  }

  function errText(e) {
    if (e == null) return 'unknown error';
    if (typeof e === 'string') return e;
    if (e.message) return e.message;
    try { return JSON.stringify(e).slice(0, 500); } catch (_) { return String(e); }
  }

  function update() {
    status.currentTime = video.currentTime;
    status.duration = Number.isFinite(video.duration) ? video.duration : null;
    status.paused = video.paused;
    status.ended = video.ended;
    status.readyState = video.readyState;
    status.width = video.videoWidth;
    status.height = video.videoHeight;
    if (video.getVideoPlaybackQuality) {
      const q = video.getVideoPlaybackQuality();
      status.decodedFrames = q.totalVideoFrames;
      status.droppedFrames = q.droppedVideoFrames;
    }
    if (typeof video.webkitAudioDecodedByteCount === 'number') status.audioDecodedBytes = video.webkitAudioDecodedByteCount;
    if (status.state === 'loading' && video.currentTime > 0 && status.decodedFrames > 0) {
      status.state = 'playing';
      log('state', 'playing');
    }
    status.cues = activeCues();
    const n = status.tracks.text.length;
    try { refreshTracks(); } catch (e) { log('tracks-error', errText(e)); }
    if (status.tracks.text.length !== n) renderTextButtons();
    render();
  }

  // ---- text tracks -------------------------------------------------------

  function nativeTextTracks() {
    const out = [];
    for (let i = 0; i < video.textTracks.length; i++) {
      const t = video.textTracks[i];
      out.push({ label: t.label || t.language || `track ${i}`, language: t.language, kind: t.kind, active: t.mode === 'showing', source: 'video' });
    }
    return out;
  }

  function activeCues() {
    const out = [];
    for (let i = 0; i < video.textTracks.length; i++) {
      const t = video.textTracks[i];
      if (t.mode !== 'showing' || !t.activeCues) continue;
      for (let j = 0; j < t.activeCues.length; j++) out.push(t.activeCues[j].text);
    }
    return out;
  }

  function setTextDetails(list) {
    // Player-level list when the player has one, else the video element's.
    const details = list && list.length ? list : nativeTextTracks();
    status.tracks.textDetails = details;
    status.tracks.text = details.map((d) => d.label);
  }

  function enableNativeText(i) {
    const tracks = video.textTracks;
    if (i >= tracks.length) return false;
    for (let j = 0; j < tracks.length; j++) tracks[j].mode = j === i ? 'showing' : 'disabled';
    return true;
  }

  // Switches to the audio track of a language (one of __vod.tracks.audioLanguages).
  window.__vodSelectAudio = function (lang) {
    let ok = false;
    try {
      ok = !!(selectAudio && selectAudio(String(lang)));
    } catch (e) {
      log('audio-error', errText(e));
    }
    log('audio-select', { lang, ok });
    update();
    return ok;
  };

  // Activates caption track i (index into __vod.tracks.text); i < 0 turns captions off.
  window.__vodEnableText = function (i) {
    i = Number(i);
    let ok = false;
    try {
      const hasPlayerList = status.tracks.textDetails.some((d) => d.source !== 'video');
      ok = enableText && hasPlayerList ? enableText(i) : enableNativeText(i);
    } catch (e) {
      log('text-error', errText(e));
      ok = false;
    }
    log('text-enable', { index: i, ok });
    update();
    return ok;
  };

  function roleName(r) { return r && typeof r === 'object' ? r.value : r; }

  function uniq(a) { return [...new Set(a.filter(Boolean))]; }

  // ---- players -----------------------------------------------------------

  function originOf(url) {
    try { return new URL(url, location.href).origin; } catch (e) { return ''; }
  }

  // The token is for the key server alone: a key or licence URL on any other origin gets no token.
  function tokenFor(url) {
    const ok = !!token && !!keyOrigin && originOf(url) === keyOrigin;
    if (token && !ok) log('token-withheld', { url: String(url) });
    return ok;
  }

  function bearer() { return 'Bearer ' + token; }

  function startHls() {
    const Hls = window.Hls;
    status.version = Hls.version;
    if (!Hls.isSupported()) {
      if (video.canPlayType('application/vnd.apple.mpegurl')) {
        log('info', 'hls.js not supported, using native HLS (no token header on key requests)');
        video.src = src;
        if (autoplay) play();
        return;
      }
      fail('hls.js: MediaSource Extensions not supported');
      return;
    }
    const hls = new Hls({
      // hls.js uses the XHR loader by default; the fetch hook covers a fetch loader.
      // Only key requests get the token, so segments and playlists need no CORS preflight.
      xhrSetup(xhr, url, context) {
        if (context && context.type === 'key' && tokenFor(url)) {
          if (!xhr.readyState) xhr.open('GET', url, true);
          xhr.setRequestHeader('Authorization', bearer());
        }
      },
      fetchSetup(context, init) {
        if (context && context.type === 'key' && tokenFor(context.url)) init.headers.set('Authorization', bearer());
        return new Request(context.url, init);
      },
    });
    window.__vodHls = hls;
    const E = Hls.Events;
    hls.on(E.ERROR, (_e, data) => {
      const msg = `hls.js ${data.type}: ${data.details}` + (data.error ? `: ${errText(data.error)}` : '') +
        (data.response && data.response.code ? ` (HTTP ${data.response.code})` : '');
      log(data.fatal ? 'hls-fatal' : 'hls-error', msg);
      if (data.fatal) fail(msg);
    });
    hls.on(E.MANIFEST_PARSED, (_e, data) => {
      log('manifest', { levels: data.levels.length });
      if (autoplay) play();
    });
    hls.on(E.KEY_LOADED, (_e, data) => log('key-loaded', data.keyInfo && data.keyInfo.decryptdata ? data.keyInfo.decryptdata.uri : undefined));
    hls.on(E.LEVEL_SWITCHED, (_e, data) => log('level', data.level));
    // Media playlists without CODECS: the codecs are only known from the init segment.
    let buffered = { video: [], audio: [] };
    hls.on(E.BUFFER_CODECS, (_e, data) => {
      const all = [];
      for (const k of ['video', 'audio', 'audiovideo']) {
        if (data[k] && data[k].codec) all.push(...String(data[k].codec).split(',').map((c) => c.trim()));
      }
      const isAudio = (c) => /^(mp4a|opus|ac-3|ec-3|flac|vorbis)/i.test(c);
      buffered = { video: uniq(all.filter((c) => !isAudio(c))), audio: uniq(all.filter(isAudio)) };
      log('codecs', all.join(','));
      update();
    });
    hls.on(E.SUBTITLE_TRACKS_UPDATED, () => update());
    hls.on(E.SUBTITLE_TRACK_SWITCH, (_e, data) => log('subtitle-track', data.id));
    refreshTracks = () => {
      const levels = hls.levels || [];
      status.tracks.video = levels.length;
      const audioCodecs = uniq(levels.map((l) => l.audioCodec).concat((hls.audioTracks || []).map((t) => t.audioCodec), buffered.audio));
      status.tracks.audio = (hls.audioTracks || []).length || (audioCodecs.length ? 1 : 0);
      status.tracks.audioLanguages = uniq((hls.audioTracks || []).map((t) => t.lang || 'und'));
      const at = (hls.audioTracks || [])[hls.audioTrack];
      status.tracks.audioActive = at ? at.lang || 'und' : null;
      status.tracks.codecs.video = uniq(levels.map((l) => l.videoCodec).concat(buffered.video));
      status.tracks.codecs.audio = audioCodecs;
      const cur = hls.subtitleTrack;
      setTextDetails((hls.subtitleTracks || []).map((t, i) => ({
        label: t.name || t.lang || `track ${i}`, language: t.lang || '', kind: t.type === 'CLOSED-CAPTIONS' ? 'captions' : 'subtitles', active: i === cur && hls.subtitleDisplay, source: 'hls',
      })));
    };
    selectAudio = (lang) => {
      const i = (hls.audioTracks || []).findIndex((t) => t.lang === lang);
      if (i < 0) return false;
      hls.audioTrack = i;
      return true;
    };
    enableText = (i) => {
      if (i < 0) { hls.subtitleTrack = -1; return true; }
      if (i >= hls.subtitleTracks.length) return false;
      hls.subtitleDisplay = true;
      hls.subtitleTrack = i;
      return true;
    };
    hls.loadSource(src);
    hls.attachMedia(video);
  }

  function startDash() {
    const dashjs = window.dashjs;
    const p = dashjs.MediaPlayer().create();
    window.__vodDash = p;
    status.version = p.getVersion();
    p.updateSettings({ debug: { logLevel: dashjs.Debug.LOG_LEVEL_WARNING } });
    if (license) {
      const clearkey = { serverURL: license };
      if (tokenFor(license)) {
        clearkey.httpRequestHeaders = { Authorization: bearer() };
        // dash.js turns on withCredentials whenever an Authorization header is set, which
        // breaks CORS against "Access-Control-Allow-Origin: *"; the bearer token needs no cookies.
        clearkey.withCredentials = false;
      }
      p.setProtectionData({ 'org.w3.clearkey': clearkey });
    }
    const ev = dashjs.MediaPlayer.events;
    p.on(ev.ERROR, (e) => {
      const err = e.error || {};
      fail(`dash.js error ${err.code !== undefined ? err.code : ''}: ${errText(err.message || err)}`);
    });
    p.on(ev.PLAYBACK_ERROR, (e) => fail(`dash.js playback error: ${errText(e.error)}`));
    if (ev.KEY_ERROR) p.on(ev.KEY_ERROR, (e) => fail(`dash.js key error: ${errText(e.error)}`));
    if (ev.LICENSE_REQUEST_COMPLETE) {
      p.on(ev.LICENSE_REQUEST_COMPLETE, (e) => {
        if (e.error) fail(`dash.js licence request failed: ${errText(e.error)}`);
        else log('license-loaded');
      });
    }
    p.on(ev.STREAM_INITIALIZED, () => { log('manifest'); update(); });
    p.on(ev.TEXT_TRACKS_ADDED, () => update());
    p.on(ev.QUALITY_CHANGE_RENDERED, (e) => log('quality', { type: e.mediaType, id: e.newRepresentation && e.newRepresentation.id }));
    refreshTracks = () => {
      if (!p.isReady()) return;
      let reps = [];
      try { reps = p.getRepresentationsByType('video') || []; } catch (_) { /* not ready */ }
      const audio = p.getTracksFor('audio') || [];
      status.tracks.video = reps.length;
      status.tracks.audio = audio.length;
      status.tracks.audioLanguages = uniq(audio.map((t) => t.lang || 'und'));
      const at = p.getCurrentTrackFor('audio');
      status.tracks.audioActive = at ? at.lang || 'und' : null;
      status.tracks.codecs.video = uniq(reps.map((r) => r.codecs));
      let areps = [];
      try { areps = p.getRepresentationsByType('audio') || []; } catch (_) { /* not ready */ }
      status.tracks.codecs.audio = uniq(areps.map((r) => r.codecs));
      const cur = p.isTextEnabled() ? p.getCurrentTextTrackIndex() : -1;
      setTextDetails((p.getTracksFor('text') || []).map((t, i) => ({
        label: (t.labels && t.labels[0] && t.labels[0].text) || t.lang || t.id || `track ${i}`,
        language: t.lang || '', kind: roleName(t.roles && t.roles[0]) || 'subtitles', active: i === cur, source: 'dash',
      })));
    };
    selectAudio = (lang) => {
      const cur = p.getCurrentTrackFor('audio');
      // The same codec as now, in the other language.
      const all = (p.getTracksFor('audio') || []).filter((t) => t.lang === lang);
      const t = all.find((x) => cur && x.codec === cur.codec) || all[0];
      if (!t) return false;
      p.setCurrentTrack(t);
      return true;
    };
    enableText = (i) => {
      if (i < 0) { p.enableText(false); return true; }
      if (i >= p.getTracksFor('text').length) return false;
      p.enableText(true);
      p.setTextTrack(i);
      return true;
    };
    p.initialize(video, src, autoplay);
  }

  // shaka errors carry only a code (see shaka.util.Error.Code) and a data array; keep it short.
  function shakaData(e) {
    if (!e || !e.data || !e.data.length) return '';
    const brief = (d) => {
      if (d == null || typeof d !== 'object') return d;
      if (d.code !== undefined && d.category !== undefined) return `shaka error ${d.code}${shakaData(d)}`;
      if (d.message) return d.message;
      if (ArrayBuffer.isView(d) || d instanceof ArrayBuffer) return `<${d.byteLength} bytes>`;
      return `{${Object.keys(d).join(',')}}`;
    };
    return `: ${errText(e.data.map(brief))}`;
  }

  async function startShaka() {
    const shaka = window.shaka;
    shaka.polyfill.installAll();
    status.version = shaka.Player.version;
    if (!shaka.Player.isBrowserSupported()) {
      fail('shaka-player: browser not supported');
      return;
    }
    const p = new shaka.Player();
    window.__vodShaka = p;
    p.addEventListener('error', (ev) => {
      const e = ev.detail || {};
      const msg = `shaka error ${e.code} (category ${e.category}, severity ${e.severity})${shakaData(e)}`;
      if (e.severity === shaka.util.Error.Severity.CRITICAL) fail(msg);
      else log('shaka-recoverable', msg);
    });
    p.addEventListener('trackschanged', () => update());
    p.addEventListener('textchanged', () => update());
    p.addEventListener('variantchanged', () => log('variant'));
    p.addEventListener('adaptation', () => log('adaptation'));
    await p.attach(video);
    const config = { streaming: { retryParameters: { maxAttempts: 2 } } };
    if (license) config.drm = { servers: { 'org.w3.clearkey': license } };
    p.configure(config);
    if (token) {
      const T = shaka.net.NetworkingEngine.RequestType;
      p.getNetworkingEngine().registerRequestFilter((type, request) => {
        if ((type === T.LICENSE || type === T.KEY) && tokenFor(request.uris[0])) {
          request.headers['Authorization'] = bearer();
        }
      });
    }
    refreshTracks = () => {
      // shaka 5: getVideoTracks / getAudioTracks; text is on when a text track is selected.
      const variants = p.getVariantTracks();
      status.tracks.codecs.video = uniq(variants.map((v) => v.videoCodec));
      status.tracks.codecs.audio = uniq(variants.map((v) => v.audioCodec));
      status.tracks.video = p.getVideoTracks().length;
      status.tracks.audio = p.getAudioTracks().length || (status.tracks.codecs.audio.length ? 1 : 0);
      status.tracks.audioLanguages = uniq(p.getAudioTracks().map((t) => t.language || 'und'));
      const at = p.getAudioTracks().find((t) => t.active);
      status.tracks.audioActive = at ? at.language || 'und' : null;
      setTextDetails(p.getTextTracks().map((t, i) => ({
        label: t.label || t.language || `track ${i}`, language: t.language || '', kind: t.kind || 'subtitles', active: !!t.active, source: 'shaka',
      })));
    };
    selectAudio = (lang) => {
      // shaka 5: audio tracks per language (and codec); keep the codec playing now.
      const cur = p.getAudioTracks().find((t) => t.active);
      const all = p.getAudioTracks().filter((t) => t.language === lang);
      const t = all.find((x) => cur && x.codecs === cur.codecs) || all[0];
      if (!t) return false;
      p.selectAudioTrack(t);
      return true;
    };
    enableText = (i) => {
      if (i < 0) { p.selectTextTrack(null); return true; }
      const tracks = p.getTextTracks();
      if (i >= tracks.length) return false;
      p.selectTextTrack(tracks[i]);
      return true;
    };
    try {
      await p.load(src);
    } catch (e) {
      if (status.state !== 'error') fail(`shaka load failed: error ${e.code} (category ${e.category})${shakaData(e)}`);
      return;
    }
    log('manifest');
    update();
    if (autoplay) play();
  }

  function play() {
    const r = video.play();
    if (r && r.catch) r.catch((e) => log('play-rejected', errText(e)));
  }

  function loadScript(file) {
    return new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = file;
      s.onload = resolve;
      s.onerror = () => reject(new Error(`could not load ${file}`));
      document.head.appendChild(s);
    });
  }

  // ---- UI ------------------------------------------------------------------

  const statusEl = document.getElementById('status');
  const textEl = document.getElementById('texttracks');

  function render() {
    if (!statusEl) return;
    const s = status;
    statusEl.className = s.state === 'error' ? 'error' : '';
    statusEl.textContent = [
      `player: ${s.player || '-'} ${s.version || ''}   state: ${s.state}${s.error ? '   error: ' + s.error : ''}`,
      `time: ${s.currentTime.toFixed(2)}${s.duration != null ? ' / ' + s.duration.toFixed(2) : ''}   frames decoded: ${s.decodedFrames} dropped: ${s.droppedFrames}   size: ${s.width}x${s.height}`,
      `tracks: video ${s.tracks.video} audio ${s.tracks.audio} text [${s.tracks.text.join(', ')}]   codecs: ${s.tracks.codecs.video.concat(s.tracks.codecs.audio).join(', ')}`,
      ...s.events.slice(-8).map((e) => `${e.t}ms ${e.type}${e.detail !== undefined ? ' ' + (typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail)) : ''}`),
    ].join('\n');
  }

  function renderTextButtons() {
    if (!textEl) return;
    textEl.textContent = '';
    if (!status.tracks.text.length) return;
    textEl.append('Captions: ');
    const add = (label, i) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = label;
      b.onclick = () => window.__vodEnableText(i);
      textEl.append(b);
    };
    add('off', -1);
    status.tracks.text.forEach(add);
  }

  function setupForm() {
    const form = document.getElementById('form');
    if (!form) return;
    const field = (id) => document.getElementById(id);
    const select = (name) => {
      field('f-player').value = name;
      for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', b.dataset.player === name);
    };
    for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => select(b.dataset.player));
    select(SCRIPTS[playerName] ? playerName : (/\.mpd(\?|$)/.test(src) ? 'dash' : 'hls'));
    field('f-src').value = src;
    field('f-token').value = token;
    field('f-license').value = license;
    if (field('f-thumbnails')) field('f-thumbnails').value = thumbnails;
    if (playerName) field('f-autoplay').checked = autoplay;
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const q = new URLSearchParams();
      q.set('player', field('f-player').value);
      for (const name of ['src', 'token', 'license', 'thumbnails']) {
        const v = field('f-' + name).value.trim();
        if (v) q.set(name, v);
      }
      if (field('f-autoplay').checked) q.set('autoplay', '1');
      location.search = q.toString();
    });
  }

  // ---- seek bar with thumbnail previews ----------------------------------------

  // WebVTT cues "start --> end" followed by "url#xywh=x,y,w,h"; URLs relative to the index.
  function parseThumbnails(text, base) {
    const seconds = (t) => t.split(':').reduce((acc, part) => acc * 60 + parseFloat(part), 0);
    const cues = [];
    for (const block of text.split(/\r?\n\r?\n/)) {
      const lines = block.split(/\r?\n/).filter(Boolean);
      const timing = lines.findIndex((l) => l.includes('-->'));
      if (timing < 0 || !lines[timing + 1]) continue;
      const [a, b] = lines[timing].split('-->').map((x) => x.trim().split(/\s+/)[0]);
      const [file, frag] = lines[timing + 1].trim().split('#');
      const m = /xywh=(\d+),(\d+),(\d+),(\d+)/.exec(frag || '');
      if (!m) continue;
      cues.push({ start: seconds(a), end: seconds(b), url: new URL(file, base).href, x: +m[1], y: +m[2], w: +m[3], h: +m[4] });
    }
    return cues;
  }

  function setupSeekBar() {
    const bar = document.getElementById('seekbar');
    const preview = document.getElementById('preview');
    if (!bar || !preview || !thumbnails) return;
    let cues = [];
    const images = new Map();
    fetch(thumbnails)
      // Sheets are relative to where the index was served from (the link redirects to the content's version).
      .then((r) => { if (!r.ok) throw new Error(`HTTP ${r.status}`); return r.text().then((t) => [t, r.url || thumbnails]); })
      .then(([text, at]) => { cues = parseThumbnails(text, at); status.thumbnails = { cues: cues.length, error: null }; })
      .catch((e) => { status.thumbnails = { cues: 0, error: errText(e) }; });
    const duration = () => (Number.isFinite(video.duration) && video.duration > 0 ? video.duration
      : cues.length ? cues[cues.length - 1].end : 0);
    const show = (fraction) => {
      const time = Math.max(0, Math.min(1, fraction)) * duration();
      const cue = cues.find((c) => time >= c.start && time < c.end) || cues[cues.length - 1];
      if (!cue) return null;
      let img = images.get(cue.url);
      if (!img) { img = new Image(); img.src = cue.url; images.set(cue.url, img); }
      const shown = { time, url: cue.url, x: cue.x, y: cue.y, w: cue.w, h: cue.h, loaded: false };
      const done = () => { shown.loaded = img.naturalWidth > 0; };
      if (img.complete) done(); else img.addEventListener('load', done, { once: true });
      Object.assign(preview.style, {
        display: 'block', width: `${cue.w}px`, height: `${cue.h}px`,
        backgroundImage: `url("${cue.url}")`, backgroundPosition: `-${cue.x}px -${cue.y}px`,
        left: `calc(${fraction * 100}% - ${cue.w / 2}px)`,
      });
      status.preview = shown;
      return shown;
    };
    bar.addEventListener('pointermove', (e) => {
      const r = bar.getBoundingClientRect();
      show((e.clientX - r.left) / r.width);
    });
    bar.addEventListener('pointerleave', () => { preview.style.display = 'none'; });
    bar.addEventListener('input', () => { if (duration()) video.currentTime = (bar.value / 1000) * duration(); });
    video.addEventListener('timeupdate', () => { if (duration()) bar.value = Math.round((video.currentTime / duration()) * 1000); });
  }

  // ---- start -------------------------------------------------------------

  window.addEventListener('error', (e) => log('page-error', errText(e.error || e.message)));
  window.addEventListener('unhandledrejection', (e) => log('unhandled-rejection', errText(e.reason)));

  video.addEventListener('error', () => {
    const e = video.error;
    if (e) fail(`video element error ${e.code}${e.message ? ': ' + e.message : ''}`);
  });
  for (const name of ['loadedmetadata', 'playing', 'pause', 'waiting', 'ended', 'seeked']) {
    video.addEventListener(name, () => { log(name, Math.round(video.currentTime * 1000) / 1000); update(); });
  }
  video.addEventListener('timeupdate', update);
  video.textTracks.addEventListener('addtrack', () => update());
  setInterval(update, 250);

  setupForm();
  setupSeekBar();
  render();

  if (!playerName) return;
  if (!SCRIPTS[playerName]) { fail(`unknown player "${playerName}" (use hls, dash or shaka)`); return; }
  if (!src) { fail('missing src parameter'); return; }
  if (autoplay) { video.muted = true; video.autoplay = true; }
  document.title = `VOD player: ${playerName}`;

  loadScript(SCRIPTS[playerName])
    .then(() => {
      log('loaded', SCRIPTS[playerName]);
      if (playerName === 'hls') return startHls();
      if (playerName === 'dash') return startDash();
      return startShaka();
    })
    .catch((e) => fail(`${playerName}: ${errText(e)}`));
})();
