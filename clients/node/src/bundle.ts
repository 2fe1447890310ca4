import { readFileSync } from 'node:fs';

/**
 * The store bundle the toolkit's `secrets` role writes for each store
 * (`<store id>.env`): shell-style KEY=value lines, values maybe quoted.
 */
export interface StoreBundle {
  storeId: string;
  storeName: string | undefined;
  lokiUrl: string;
  /** The push endpoint: LOKI_PUSH_URL, or LOKI_URL + /loki/api/v1/push. */
  pushUrl: string;
  username: string;
  password: string;
}

export class BundleError extends Error {
  override name = 'BundleError';
}

/** Parses shell-style `KEY=value` lines: `#` comments, `export KEY=...`, "double" (with \" \\ \$ \` escapes) or 'single' quotes. */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$/.exec(line);
    if (!match) continue;
    const key = match[1] as string;
    out[key] = unquote((match[2] as string).trim());
  }
  return out;
}

function unquote(value: string): string {
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
    return value.slice(1, -1).replace(/\\(["\\$`])/g, '$1');
  }
  if (value.length >= 2 && value.startsWith("'") && value.endsWith("'")) return value.slice(1, -1);
  // Unquoted: an unescaped " #" starts a comment, as in the shell.
  const hash = value.search(/\s#/);
  return (hash >= 0 ? value.slice(0, hash) : value).trim();
}

const STORE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Validates the parsed variables of a bundle. Throws BundleError naming the first problem. */
export function bundleFromEnv(env: Record<string, string | undefined>, source = 'bundle'): StoreBundle {
  const need = (key: string): string => {
    const value = env[key];
    if (value === undefined || value === '') throw new BundleError(`${source}: ${key} is missing or empty`);
    return value;
  };
  const storeId = need('STORE_ID');
  if (!STORE_ID.test(storeId)) throw new BundleError(`${source}: STORE_ID ${JSON.stringify(storeId)} is not a store id`);
  const username = env.LOKI_USERNAME && env.LOKI_USERNAME !== '' ? env.LOKI_USERNAME : storeId;
  if (username !== storeId) {
    // The edge refuses every stream whose store label is not the pushing credential's store.
    throw new BundleError(`${source}: LOKI_USERNAME (${username}) differs from STORE_ID (${storeId}); the edge would refuse every push`);
  }
  const password = need('LOKI_PASSWORD');
  const lokiUrl = (env.LOKI_URL ?? '').replace(/\/+$/, '');
  const pushUrl = env.LOKI_PUSH_URL && env.LOKI_PUSH_URL !== '' ? env.LOKI_PUSH_URL : lokiUrl ? `${lokiUrl}/loki/api/v1/push` : '';
  if (pushUrl === '') throw new BundleError(`${source}: neither LOKI_PUSH_URL nor LOKI_URL is set`);
  let parsed: URL;
  try {
    parsed = new URL(pushUrl);
  } catch {
    throw new BundleError(`${source}: push URL ${JSON.stringify(pushUrl)} is not a URL`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new BundleError(`${source}: push URL must be http(s), got ${parsed.protocol}`);
  }
  return {
    storeId,
    storeName: env.STORE_NAME && env.STORE_NAME !== '' ? env.STORE_NAME : undefined,
    lokiUrl: lokiUrl || parsed.origin,
    pushUrl,
    username,
    password,
  };
}

/** Reads and validates a bundle file. */
export function loadBundle(path: string): StoreBundle {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new BundleError(`cannot read the store bundle ${path}: ${(err as Error).message}`);
  }
  return bundleFromEnv(parseEnvFile(text), path);
}
