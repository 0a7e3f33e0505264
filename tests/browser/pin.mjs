// The end user's page in a real browser (Debian's headless Chromium,
// driven by Playwright's client): its markup checked by html-validate,
// its accessibility by axe-core, its layout at a phone's width, then a
// wrong PIN and the right one typed as a person would, and the download
// saved. Prints one JSON object for tests/tests/browser.rs to judge.
//
// Usage: node pin.mjs URL WRONG_PIN PIN SAVE_AS

import { createRequire } from "node:module";
import { chromium } from "playwright-core";
import { HtmlValidate } from "html-validate";

const require = createRequire(import.meta.url);
const [url, wrong, pin, saveAs] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  // As root, in a closed network: no sandbox, nothing fetched in the
  // background.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const result = {};
try {
  // First as it is served: the CSP in force, nothing refused, the
  // stylesheet applied.
  const plain = await browser.newContext({ ignoreHTTPSErrors: true, locale: "nl-NL" });
  const first = await plain.newPage();
  const refused = [];
  first.on("console", (m) => {
    if (m.text().includes("Content Security Policy")) refused.push(m.text());
  });
  const response = await first.goto(url);
  result.status = response.status();
  result.csp_refusals = refused;
  result.button_colour = await first.$eval("button", (b) => getComputedStyle(b).backgroundColor);
  const validator = new HtmlValidate({ extends: ["html-validate:recommended"] });
  const report = await validator.validateString(await response.text());
  result.markup = report.results.flatMap((r) =>
    r.messages.map((m) => `${m.ruleId}: ${m.message} (line ${m.line})`),
  );
  await plain.close();

  // Then as a Dutch visitor on a phone, with axe injected (which the CSP
  // would rightly refuse).
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    acceptDownloads: true,
    bypassCSP: true,
    locale: "nl-NL",
    viewport: { width: 360, height: 740 },
  });
  const page = await context.newPage();
  await page.goto(url);
  result.lang = await page.getAttribute("html", "lang");
  result.heading = await page.textContent("h1");
  result.overflows = await page.evaluate(
    () => document.documentElement.scrollWidth > window.innerWidth,
  );
  await page.addScriptTag({ path: require.resolve("axe-core/axe.min.js") });
  result.axe = await page.evaluate(async () =>
    (await window.axe.run()).violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.length,
    })),
  );

  // A wrong PIN: the page again, with what to do.
  await page.fill("#pin", wrong);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  result.wrong = (await page.textContent("[role=alert]"))?.trim();
  result.focus_label = await page.textContent("label[for=pin]");

  // The right one: the download.
  await page.fill("#pin", pin);
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.click("button[type=submit]"),
  ]);
  await download.saveAs(saveAs);
  result.download = download.suggestedFilename();
  await context.close();
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
