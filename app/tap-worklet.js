/* global AudioWorkletProcessor, registerProcessor */
/**
 * The recorder's AudioWorklet (app/recorder.ts): hands the microphone's raw samples to the page.
 * A file of its own, not a Blob URL, so the Content-Security-Policy needs no blob: scripts.
 * Plain JavaScript: it is served as it is, never bundled (worklets have their own global scope).
 */
class Tap extends AudioWorkletProcessor {
  constructor() {
    super();
    this.buffer = new Float32Array(2048);
    this.used = 0;
  }
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (!ch) return true;
    // Hand over ~40 ms at a time, not every 128-sample render quantum.
    if (this.used + ch.length > this.buffer.length) {
      this.port.postMessage(this.buffer.slice(0, this.used));
      this.used = 0;
    }
    this.buffer.set(ch, this.used);
    this.used += ch.length;
    return true;
  }
}
registerProcessor('earshot-tap', Tap);
