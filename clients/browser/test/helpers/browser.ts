import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, type Page, chromium } from 'playwright-core';

/** Debian's Chromium (tools/install-system-deps.sh installs it); OBS_CHROMIUM overrides. Playwright never downloads a browser here. */
export const CHROMIUM = process.env.OBS_CHROMIUM ?? '/usr/bin/chromium';

/** Where a failing test leaves its screenshot and trace: <repo>/reports/browser/ (git-ignored), or OBS_BROWSER_REPORTS. */
export const REPORTS = process.env.OBS_BROWSER_REPORTS ?? fileURLToPath(new URL('../../../../../reports/browser/', import.meta.url));

export const BASE_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-quic',
];

export interface LaunchOptions {
  /** --host-resolver-rules entries, e.g. "MAP pos.test.internal:443 127.0.0.1:40123". */
  rules?: string[];
  /** SPKI hashes (base64 SHA-256) whose certificates Chromium accepts (--ignore-certificate-errors-spki-list). */
  spki?: string[];
}

export interface Launched {
  browser: Browser;
  close(): Promise<void>;
}

/**
 * Headless Chromium with the test flags. Playwright gives every launch a
 * fresh temporary user-data directory of its own (and removes it on close);
 * each test then works in a fresh browser context (its own storage).
 */
export async function launch(o: LaunchOptions = {}): Promise<Launched> {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: run tools/install-system-deps.sh, or set OBS_CHROMIUM`);
  const args = [...BASE_ARGS];
  if (o.rules && o.rules.length > 0) args.push(`--host-resolver-rules=${o.rules.join(', ')}`);
  if (o.spki && o.spki.length > 0) args.push(`--ignore-certificate-errors-spki-list=${o.spki.join(',')}`);
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args, timeout: 30_000 });
  return {
    browser,
    close: async () => {
      await browser.close().catch(() => undefined);
    },
  };
}

/** What a page printed and threw, as the browser reported it. */
export interface PageLog {
  console: string[];
  errors: string[];
}

export function watch(page: Page): PageLog {
  const log: PageLog = { console: [], errors: [] };
  page.on('console', (m) => log.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.errors.push(e.message));
  return log;
}

function safeName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-|-$/g, '').slice(0, 100);
}

/**
 * Runs `fn` in a fresh browser context (its own storage: IndexedDB, locks)
 * with tracing on; when `fn` throws, the trace and a screenshot of every open
 * page are kept under REPORTS, named after the test.
 */
export async function inContext<T>(browser: Browser, name: string, fn: (ctx: BrowserContext) => Promise<T>): Promise<T> {
  const ctx = await browser.newContext();
  await ctx.tracing.start({ screenshots: true, snapshots: true });
  try {
    const out = await fn(ctx);
    await ctx.tracing.stop();
    return out;
  } catch (err) {
    const dir = REPORTS;
    try {
      mkdirSync(dir, { recursive: true });
      const base = join(dir, safeName(name));
      let i = 0;
      for (const p of ctx.pages()) {
        i += 1;
        await p.screenshot({ path: `${base}-page${i}.png`, timeout: 5000 }).catch(() => undefined);
      }
      await ctx.tracing.stop({ path: `${base}-trace.zip` });
      console.log(`# failure artefacts: ${base}-trace.zip (npx playwright-core show-trace), ${base}-page*.png`);
    } catch {
      await ctx.tracing.stop().catch(() => undefined);
    }
    throw err;
  } finally {
    await ctx.close().catch(() => undefined);
  }
}

/** Polls `cond` (real time) until true or the deadline. */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
