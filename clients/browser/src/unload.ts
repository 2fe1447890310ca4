export type HideReason = 'pagehide' | 'visibilitychange';

/**
 * Calls `onHide` when the page may be going away: `visibilitychange` to
 * hidden (the last event a mobile browser reliably fires) and `pagehide`
 * (navigation, reload, tab close; bfcache). `onShow` when it is visible again.
 */
export function watchPageLifecycle(onHide: (reason: HideReason) => void, onShow: () => void): () => void {
  const vis = (): void => {
    if (document.visibilityState === 'hidden') onHide('visibilitychange');
    else onShow();
  };
  const hide = (): void => onHide('pagehide');
  addEventListener('pagehide', hide);
  document.addEventListener('visibilitychange', vis);
  return () => {
    removeEventListener('pagehide', hide);
    document.removeEventListener('visibilitychange', vis);
  };
}
