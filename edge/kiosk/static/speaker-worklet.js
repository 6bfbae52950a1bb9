// The kiosk's speaker (an AudioWorklet): plays the official's voice. kiosk.js posts each binary
// message of the box's /api/v1/live/speaker socket here as it is (an ArrayBuffer: a 4-byte
// sequence number, then 20 ms of 48 kHz mono s16le PCM; see edge/kiosk/speaker.py), or
// {type: "flush"} when a call begins or ends. The samples go into a ring buffer that plays
// once it holds the target delay (targetMs, ~60 ms); when more than maxMs (~200 ms) is
// buffered the oldest samples are skipped back down to the target (latency stays bounded);
// when it runs dry the output is silence (an underrun, counted) until the target is buffered
// again. The context runs at 48 kHz (kiosk.js asks for it), so samples are played as they come.
// Every 100 ms the counters are posted back: {played, underruns, dropped, rms, buffered_ms}
// (played and dropped in samples; rms of what was played in the last 100 ms, 0..1).
"use strict";

const HEADER_BYTES = 4;

class XfvSpeaker extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.capacity = sampleRate; // one second
    this.ring = new Float32Array(this.capacity);
    this.readAt = 0;
    this.writeAt = 0;
    this.fill = 0;
    this.target = Math.round(sampleRate * (o.targetMs || 60) / 1000);
    this.limit = Math.round(sampleRate * (o.maxMs || 200) / 1000);
    this.playing = false;
    this.played = 0;
    this.underruns = 0;
    this.dropped = 0;
    this.sumSquares = 0;
    this.counted = 0;
    this.reportEvery = Math.round(sampleRate / 10);
    this.sinceReport = 0;
    this.port.onmessage = (e) => this.receive(e.data);
  }

  receive(data) {
    if (data instanceof ArrayBuffer) {
      const samples = Math.floor((data.byteLength - HEADER_BYTES) / 2);
      if (samples > 0) this.push(new Int16Array(data, HEADER_BYTES, samples));
    } else if (data && data.type === "flush") {
      this.readAt = this.writeAt = this.fill = 0;
      this.playing = false;
    }
  }

  push(pcm) {
    const cap = this.capacity, ring = this.ring;
    let w = this.writeAt;
    for (let i = 0; i < pcm.length; i++) {
      ring[w] = pcm[i] / 32768;
      w = w + 1 === cap ? 0 : w + 1;
    }
    this.writeAt = w;
    this.fill = Math.min(cap, this.fill + pcm.length);
    if (this.fill > this.limit) { // too far behind: skip ahead to the target delay
      const skip = this.fill - this.target;
      this.readAt = (w - this.target + cap) % cap;
      this.fill = this.target;
      this.dropped += skip;
    }
  }

  process(inputs, outputs) {
    const out = outputs[0][0], n = out.length;
    if (!this.playing && this.fill >= this.target) this.playing = true;
    let k = 0;
    if (this.playing) {
      const take = Math.min(n, this.fill), cap = this.capacity, ring = this.ring;
      let r = this.readAt;
      for (; k < take; k++) {
        const s = ring[r];
        out[k] = s;
        this.sumSquares += s * s;
        r = r + 1 === cap ? 0 : r + 1;
      }
      this.readAt = r;
      this.fill -= take;
      this.played += take;
      if (take < n) { this.underruns++; this.playing = false; }
    }
    for (; k < n; k++) out[k] = 0;
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    this.counted += n;
    this.sinceReport += n;
    if (this.sinceReport >= this.reportEvery) {
      this.port.postMessage({
        played: this.played, underruns: this.underruns, dropped: this.dropped,
        rms: Math.sqrt(this.sumSquares / this.counted),
        buffered_ms: Math.round(this.fill * 1000 / sampleRate),
      });
      this.sinceReport = this.counted = this.sumSquares = 0;
    }
    return true;
  }
}

registerProcessor("xfv-speaker", XfvSpeaker);
