/**
 * Debian's Chromium, driven by playwright-core (never a browser download): one launcher for
 * the benchmarks and the browser tests. CHROMIUM_BIN points elsewhere if needed.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { CellularError } from '../organism/wire/errors.ts';

export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Launches Chromium with a fresh temporary profile (removed on close). */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new CellularError('CLI_ERR_USAGE', `no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_BIN)`);
  return chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
}
