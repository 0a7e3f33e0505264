// The end user's page in a real browser (Debian's headless Chromium,
// driven by Playwright's client): its markup checked by html-validate,
// its accessibility by axe-core, its layout at a phone's width, then a
// wrong PIN and the right one typed as a person would, and the download
// saved. Then, given a channel's address, the same checks of the
// channel's page, a name and a problem typed, and its download saved.
// Prints one JSON object for tests/tests/browser.rs to judge.
//
// Usage: node pin.mjs URL WRONG_PIN PIN SAVE_AS [CHANNEL_URL CHANNEL_SAVE_AS]

import { createRequire } from "node:module";
import { chromium } from "playwright-core";
import { HtmlValidate } from "html-validate";

const require = createRequire(import.meta.url);
const [url, wrong, pin, saveAs, channelUrl, channelSaveAs] = process.argv.slice(2);
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

// A page as it is served: the CSP in force, nothing refused, the
// stylesheet applied, the markup valid.
async function asServed(address) {
  const plain = await browser.newContext({ ignoreHTTPSErrors: true, locale: "nl-NL" });
  const page = await plain.newPage();
  const refused = [];
  page.on("console", (m) => {
    if (m.text().includes("Content Security Policy")) refused.push(m.text());
  });
  const response = await page.goto(address);
  const seen = {
    status: response.status(),
    csp_refusals: refused,
    button_colour: await page.$eval("button", (b) => getComputedStyle(b).backgroundColor),
  };
  const validator = new HtmlValidate({ extends: ["html-validate:recommended"] });
  const report = await validator.validateString(await response.text());
  seen.markup = report.results.flatMap((r) =>
    r.messages.map((m) => `${m.ruleId}: ${m.message} (line ${m.line})`),
  );
  await plain.close();
  return seen;
}

// axe-core's findings on a page (injected: the CSP would rightly refuse it
// unless bypassed).
async function axe(page) {
  await page.addScriptTag({ path: require.resolve("axe-core/axe.min.js") });
  return page.evaluate(async () =>
    (await window.axe.run()).violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.length,
    })),
  );
}
try {
  // First as it is served.
  Object.assign(result, await asServed(url));

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
  result.axe = await axe(page);

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

  // A channel's page: checked the same way, then a name and a problem
  // typed, and the download.
  if (channelUrl) {
    const channel = await asServed(channelUrl);
    await page.goto(channelUrl);
    channel.axe = await axe(page);
    channel.overflows = await page.evaluate(
      () => document.documentElement.scrollWidth > window.innerWidth,
    );
    await page.fill("#name", "Grace Hopper");
    await page.fill("#problem", "De scanner zegt E42");
    const [got] = await Promise.all([
      page.waitForEvent("download"),
      page.click("button[type=submit]"),
    ]);
    await got.saveAs(channelSaveAs);
    channel.download = got.suggestedFilename();
    result.channel = channel;
  }
  await context.close();
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
