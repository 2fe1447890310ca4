/** Messages between the tabs of one origin (BroadcastChannel): the leader hears of other tabs' lines at once. */
export type TabMessage = { t: 'appended'; n: number; b: number } | { t: 'flush' };

export class TabChannel {
  private readonly ch: BroadcastChannel | undefined;

  constructor(name: string, onMessage: (m: TabMessage) => void) {
    if (typeof BroadcastChannel !== 'function') return;
    this.ch = new BroadcastChannel(name);
    this.ch.onmessage = (ev: MessageEvent<TabMessage>) => onMessage(ev.data);
  }

  post(m: TabMessage): void {
    try {
      this.ch?.postMessage(m);
    } catch {
      /* a closed channel: the leader polls anyway */
    }
  }

  close(): void {
    this.ch?.close();
  }
}
