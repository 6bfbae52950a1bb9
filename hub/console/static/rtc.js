"use strict";
// Live reception in the browser: the signaling WebSocket and the peer connections to the hub's
// relay (an SFU). Shared by live.js (the queue), call.js (a call) and wall.js (monitoring).
//
// Signaling (contracts/signaling.py): every (re)connection first fetches a fresh SIGNALING
// token from POST /api/v1/live/token and sends it in a `hello` frame. Media: one
// RTCPeerConnection per direction, offered by the browser and answered by the relay;
// non-trickle, so every offer waits for ICE gathering to complete. A subscribe offer names its
// `source` (the publisher it wants); the relay's answer carries it back, or `media_failed` says
// why it could not answer, and the offer is then sent again on a new connection.
(() => {  // only XFV.live is global
const RTC = {
  GATHER_MS: 5000,   // ICE gathering rarely takes long on a LAN; the offer goes out anyway
  ANSWER_MS: 20000,  // the relay holds a subscribe offer up to 15 s for its source to publish
  RETRY_MS: 1500,

  // Resolves when `pc` has gathered all its candidates (or after GATHER_MS).
  gathered(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (pc.iceGatheringState !== "complete") return;
        pc.removeEventListener("icegatheringstatechange", done);
        resolve();
      };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, RTC.GATHER_MS);
    });
  },

  // Put H.264 first on a receiving video transceiver (boxes send H.264; no transcoding).
  preferH264(transceiver) {
    if (!transceiver.setCodecPreferences || !window.RTCRtpReceiver?.getCapabilities) return;
    const codecs = RTCRtpReceiver.getCapabilities("video")?.codecs || [];
    const h264 = codecs.filter((c) => c.mimeType.toLowerCase() === "video/h264");
    if (!h264.length) return;
    transceiver.setCodecPreferences([...h264, ...codecs.filter((c) => !h264.includes(c))]);
  },

  canDecodeH264() {
    const codecs = window.RTCRtpReceiver?.getCapabilities?.("video")?.codecs || [];
    return codecs.some((c) => c.mimeType.toLowerCase() === "video/h264");
  },
};

// The signaling WebSocket of a signed-in user. `onFrame(frame)` gets every frame the server
// sends; `onState(state)` gets "connecting", "open" (after `welcome`), "closed" (retrying)
// and "refused" (a close the user must act on, e.g. another tab took over). Reconnects with
// backoff, each time with a new token.
class Signaling {
  constructor({ onFrame = () => {}, onState = () => {} } = {}) {
    this.onFrame = onFrame;
    this.onState = onState;
    this.ws = null;
    this.welcome = null;
    this.stopped = false;
    this.backoff = 500;
    this.pending = [];  // offers waiting for their answer: {key, resolve, reject, timer}
  }

  async start() {
    this.stopped = false;
    await this.connect();
  }

  async connect() {
    if (this.stopped) return;
    this.onState("connecting");
    let grant;
    try {
      const r = await XFV.post("/api/v1/live/token");
      if (!r.ok) throw new Error(r.body.error || `HTTP ${r.status}`);
      grant = r.body;
    } catch (err) {
      console.warn("live token:", err);
      this.retry();
      return;
    }
    const ws = new WebSocket(grant.signaling_url);
    this.ws = ws;
    ws.addEventListener("open", () => ws.send(JSON.stringify({ type: "hello", token: grant.token })));
    ws.addEventListener("message", (ev) => this.receive(ev.data));
    ws.addEventListener("close", (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.welcome = null;
      this.failPending("signaling closed");
      if (ev.code === 4409 || ev.code === 4403) {  // replaced by another tab; subject in use
        this.stopped = true;
        this.onState("refused", ev.reason);
        return;
      }
      this.onState("closed", ev.reason);
      this.retry();
    });
  }

  retry() {
    if (this.stopped) return;
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, 8000);
    setTimeout(() => this.connect(), wait);
  }

  receive(text) {
    let frame;
    try { frame = JSON.parse(text); } catch { return; }
    if (frame.type === "welcome") {
      this.welcome = frame;
      this.backoff = 500;
      this.onState("open");
    } else if (frame.type === "answer") {
      this.settle(frame, (p) => p.resolve(frame.sdp));
    } else if (frame.type === "media_failed") {
      this.settle(frame, (p) => p.reject(new Error(`${frame.code}: ${frame.message}`)));
    } else if (frame.type === "error" && frame.frame_type === "offer" && this.pending.length) {
      const p = this.pending.shift();  // the server refused an offer before the relay saw it
      clearTimeout(p.timer);
      p.reject(new Error(`${frame.code}: ${frame.message}`));
    }
    this.onFrame(frame);
  }

  // The pending offer an answer or media_failed belongs to: same session and direction, and
  // same source when the relay names one.
  settle(frame, act) {
    const i = this.pending.findIndex((p) => p.session_id === frame.session_id
      && p.direction === frame.direction
      && (!frame.source || !p.source || p.source === frame.source));
    if (i < 0) return;
    const [p] = this.pending.splice(i, 1);
    clearTimeout(p.timer);
    act(p);
  }

  failPending(why) {
    for (const p of this.pending.splice(0)) {
      clearTimeout(p.timer);
      p.reject(new Error(why));
    }
  }

  get open() { return this.ws !== null && this.ws.readyState === WebSocket.OPEN && this.welcome !== null; }

  send(frame) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  // Send an offer and wait for the relay's answer SDP (rejects on media_failed or timeout).
  exchange(session_id, direction, sdp, source = null) {
    return new Promise((resolve, reject) => {
      const frame = { type: "offer", session_id, direction, sdp };
      if (source) frame.source = source;
      const p = { session_id, direction, source, resolve, reject };
      p.timer = setTimeout(() => {
        this.pending = this.pending.filter((x) => x !== p);
        reject(new Error(`no answer to the ${direction} offer within ${RTC.ANSWER_MS} ms`));
      }, RTC.ANSWER_MS);
      this.pending.push(p);
      if (!this.send(frame)) {
        this.pending = this.pending.filter((x) => x !== p);
        clearTimeout(p.timer);
        reject(new Error("signaling is not connected"));
      }
    });
  }

  stop() {
    this.stopped = true;
    this.failPending("stopped");
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, "page closed");
    }
  }
}

// One media connection to the relay: an upstream (`publish` with a MediaStream) or a
// downstream (`subscribe` of `source`). Offers, waits for the answer, and when the
// connection fails or the relay refuses, starts over on a new RTCPeerConnection until
// `close()`. `onState(state)` gets "connecting", "connected", "reconnecting", "lost";
// `onTrack(stream)` the remote stream of a downstream.
class MediaLink {
  constructor(signaling, { sessionId, direction, stream = null, source = null, audio = true,
                           onState = () => {}, onTrack = () => {} }) {
    Object.assign(this, { signaling, sessionId, direction, stream, source, audio, onState, onTrack });
    this.pc = null;
    this.closed = false;
    this.attempts = 0;
    this.state = "connecting";
    this.remote = new MediaStream();
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.onState(state);
  }

  async start() {
    while (!this.closed) {
      this.attempts += 1;
      try {
        await this.negotiate();
        return;
      } catch (err) {
        console.warn(`${this.direction} ${this.source || ""} attempt ${this.attempts}:`, err.message);
        this.dropPc();
        if (this.closed) return;
        this.setState(this.attempts >= 3 ? "lost" : "reconnecting");
        await new Promise((r) => setTimeout(r, RTC.RETRY_MS));
        while (!this.closed && !this.signaling.open) await new Promise((r) => setTimeout(r, 300));
      }
    }
  }

  async negotiate() {
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    if (this.direction === "publish") {
      for (const track of this.stream.getTracks()) {
        pc.addTransceiver(track, { direction: "sendonly", streams: [this.stream] });
      }
    } else {
      RTC.preferH264(pc.addTransceiver("video", { direction: "recvonly" }));
      if (this.audio) pc.addTransceiver("audio", { direction: "recvonly" });
      this.remote = new MediaStream();
      pc.addEventListener("track", (ev) => {
        this.remote.addTrack(ev.track);
        this.onTrack(this.remote);
      });
    }
    pc.addEventListener("connectionstatechange", () => this.watch(pc));
    await pc.setLocalDescription(await pc.createOffer());
    await RTC.gathered(pc);
    if (this.closed || this.pc !== pc) throw new Error("closed");
    const sdp = await this.signaling.exchange(this.sessionId, this.direction,
      pc.localDescription.sdp, this.source);
    if (this.closed || this.pc !== pc) throw new Error("closed");
    await pc.setRemoteDescription({ type: "answer", sdp });
  }

  watch(pc) {
    if (pc !== this.pc || this.closed) return;
    const s = pc.connectionState;
    if (s === "connected") {
      this.attempts = 0;
      this.setState("connected");
    } else if (s === "disconnected") {
      this.setState("reconnecting");  // ICE may come back by itself
    } else if (s === "failed") {
      this.setState("reconnecting");
      this.dropPc();
      this.start();
    }
  }

  // Negotiate again on a new connection (after signaling came back, say).
  restart() {
    if (this.closed) return;
    this.dropPc();
    this.setState("reconnecting");
    this.start();
  }

  dropPc() {
    const pc = this.pc;
    this.pc = null;
    if (pc) pc.close();
  }

  close() {
    this.closed = true;
    this.dropPc();
    this.setState("lost");
  }
}

// Connection quality from getStats: RTT (ms), packet loss (%), bitrates (kbit/s) and decoded
// frames, compared with the previous sample; `light` is green, amber or red.
class Quality {
  constructor() { this.prev = new Map(); }

  async sample(upstream, downstream) {
    const q = { rtt: null, loss: null, inKbps: null, outKbps: null, framesDecoded: 0,
                framesPerSecond: null, codec: null, decoder: null };
    const now = performance.now();
    if (downstream) {
      const stats = await downstream.getStats();
      let lost = 0, received = 0;
      stats.forEach((r) => {
        if (r.type === "inbound-rtp") {
          lost += r.packetsLost || 0;
          received += r.packetsReceived || 0;
          q.inKbps = (q.inKbps || 0) + this.rate(`in-${r.id}`, r.bytesReceived, now);
          if (r.kind === "video") {
            q.framesDecoded = r.framesDecoded || 0;
            q.framesPerSecond = r.framesPerSecond ?? null;
            q.decoder = r.decoderImplementation || null;
            const codec = stats.get(r.codecId);
            q.codec = codec ? codec.mimeType : null;
          }
        }
        if (r.type === "candidate-pair" && r.nominated && r.currentRoundTripTime != null) {
          q.rtt = r.currentRoundTripTime * 1000;
        }
      });
      const key = "loss-down";
      const before = this.prev.get(key) || { lost: 0, received: 0 };
      const dl = lost - before.lost, dr = received - before.received;
      this.prev.set(key, { lost, received });
      if (dl + dr > 0) q.loss = (100 * Math.max(0, dl)) / (dl + dr);
    }
    if (upstream) {
      const stats = await upstream.getStats();
      stats.forEach((r) => {
        if (r.type === "outbound-rtp") {
          q.outKbps = (q.outKbps || 0) + this.rate(`out-${r.id}`, r.bytesSent, now);
        }
        if (r.type === "remote-inbound-rtp" && r.roundTripTime != null && q.rtt == null) {
          q.rtt = r.roundTripTime * 1000;
        }
        if (r.type === "candidate-pair" && r.nominated && r.currentRoundTripTime != null
            && q.rtt == null) {
          q.rtt = r.currentRoundTripTime * 1000;
        }
      });
    }
    q.light = Quality.light(q);
    return q;
  }

  rate(key, bytes, now) {
    const before = this.prev.get(key);
    this.prev.set(key, { bytes: bytes || 0, at: now });
    if (!before || now <= before.at) return 0;
    return ((bytes - before.bytes) * 8) / (now - before.at);  // bits per ms = kbit/s
  }

  // Green: RTT under 300 ms and loss under 2 %; red: RTT over 1 s or loss over 10 %.
  static light(q) {
    if (q.rtt == null && q.loss == null) return "grey";
    if ((q.rtt ?? 0) > 1000 || (q.loss ?? 0) > 10) return "red";
    if ((q.rtt ?? 0) > 300 || (q.loss ?? 0) > 2) return "amber";
    return "green";
  }
}

XFV.live = { RTC, Signaling, MediaLink, Quality };
})();
