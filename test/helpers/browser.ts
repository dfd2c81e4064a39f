/**
 * Test helper: Debian's Chromium for a test (closed in teardown), and screenshots saved as
 * test artifacts under test-artifacts/.
 */
import type { ExecutionContext } from 'ava';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../../simulations/chromium.ts';

export const ARTIFACTS = 'test-artifacts';

export async function launch(t: ExecutionContext): Promise<Browser> {
  const browser = await launchChromium();
  t.teardown(() => browser.close());
  return browser;
}

export async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true }).catch((e: unknown) => console.error(`screenshot ${name}: ${(e as Error).message}`));
}
