// Drives ComfyUI's real frontend in Debian's chromium through playwright-core (no browser download).
//
//   node tests/browser/driver.mjs <job.json>
//
// job.json: {"url": "http://127.0.0.1:PORT", "out": "<folder for screenshots>", "chromium": "/usr/bin/chromium",
//            "workflows": {"<name>": <UI-format workflow>, ...}, "run": "<name of the workflow to run>",
//            "readme": false}
// Prints one JSON object on stdout: per workflow the node types the frontend does not know, whether a
// missing-nodes dialog opened and the screenshot; the run's prompt_id; every console error and page error
// (with the script URL it came from). With "readme": true it also takes the README's screenshots.
// The assertions live in tests/test_browser.py.

import { readFileSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const job = JSON.parse(readFileSync(process.argv[2], "utf8"));
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update"];
const result = { workflows: {}, console: [], pageErrors: [], run: null, readme: [] };

function shot(name) {
    return path.join(job.out, `${name}.png`);
}

async function settle(page, ms = 400) {
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await page.waitForTimeout(ms);
}

async function closeDialogs(page) {
    for (let i = 0; i < 3 && (await page.locator(".p-dialog").count()); i++) {
        await page.keyboard.press("Escape");
        await page.waitForTimeout(200);
    }
}

async function dialogsText(page) {
    return page.evaluate(() => [...document.querySelectorAll(".p-dialog")].map((d) => d.innerText.slice(0, 400)));
}

async function load(page, name, workflow) {
    await page.evaluate(async ([wf, wfName]) => {
        await window.app.loadGraphData(wf, true, true, wfName);
    }, [workflow, name]);
    await settle(page, 600);
    const missing = await page.evaluate(() => {
        const known = window.LiteGraph.registered_node_types;
        return window.app.graph.nodes.filter((n) => !(n.type in known)).map((n) => `${n.id}:${n.type}`);
    });
    const dialogs = await dialogsText(page);
    return { missing, dialogs, nodes: await page.evaluate(() => window.app.graph.nodes.length) };
}

async function fitView(page) {
    await page.evaluate(() => window.app.extensionManager.command.execute("Comfy.Canvas.FitView"));
    await settle(page, 500);
}

async function canvasPoint(page, nodeId, widgetName) {
    // The page position of a widget's middle (for clicks), from the canvas's own transform.
    return page.evaluate(([id, name]) => {
        const app = window.app;
        const node = app.graph.getNodeById(id);
        const widget = node.widgets.find((w) => w.name === name);
        const [x, y] = app.canvas.ds.convertOffsetToCanvas([node.pos[0] + node.size[0] / 2,
            node.pos[1] + widget.last_y + 10]);
        const rect = app.canvas.canvas.getBoundingClientRect();
        return { x: rect.left + x, y: rect.top + y };
    }, [nodeId, widgetName]);
}

async function main() {
    const browser = await chromium.launch({ executablePath: job.chromium, args: FLAGS, headless: true });
    const context = await browser.newContext({ viewport: { width: job.width ?? 1920, height: job.height ?? 1080 }, deviceScaleFactor: 1 });
    const page = await context.newPage();
    page.on("console", (msg) => {
        if (msg.type() === "error" || msg.type() === "warning") {
            result.console.push({ type: msg.type(), text: msg.text(), url: msg.location()?.url ?? "" });
        }
    });
    page.on("pageerror", (err) => result.pageErrors.push({ text: String(err), stack: err.stack ?? "" }));

    // A first start shows the template browser; a user who has used ComfyUI has seen it.
    await page.request.post(`${job.url}/api/settings`, {
        data: {
            "Comfy.TutorialCompleted": true,
            "Comfy.Minimap.Visible": false,
            "Comfy.Graph.CanvasInfo": false,
            "LiteGraph.Canvas.MinFontSizeForLOD": 0, // text at every zoom: screenshots are for reading
        },
    });
    await page.goto(job.url, { waitUntil: "domcontentloaded" });
    await page.waitForFunction(() => window.app?.graph && window.app.extensionManager
        && window.app.extensions?.some((e) => e.name === "MaskMargin.Frontend"), null, { timeout: 90000 });
    await settle(page, 1500);
    await closeDialogs(page);

    for (const [name, workflow] of Object.entries(job.workflows)) {
        const loaded = await load(page, name, workflow);
        await fitView(page);
        await page.screenshot({ path: shot(`workflow_${name}`) });
        result.workflows[name] = { ...loaded, screenshot: shot(`workflow_${name}`) };
        await closeDialogs(page);
    }

    if (job.run) {
        await load(page, job.run, job.workflows[job.run]);
        await fitView(page);
        const [response] = await Promise.all([
            page.waitForResponse((r) => r.url().endsWith("/api/prompt") && r.request().method() === "POST",
                { timeout: 30000 }),
            page.locator('[data-testid="queue-button"]').first().click(),
        ]);
        const answer = await response.json();
        const promptId = answer.prompt_id;
        let history = null;
        for (let i = 0; i < 600 && !history; i++) {
            const r = await page.request.get(`${job.url}/api/history/${promptId}`);
            history = (await r.json())[promptId] ?? null;
            if (!history) await page.waitForTimeout(250);
        }
        await settle(page, 1500); // previews load after the "executed" messages
        const shown = await page.evaluate(() => window.app.graph.nodes.map((n) => ({
            id: n.id, type: n.type, imgs: n.imgs?.length ?? 0, counts: n.maskmarginCounts ?? null,
        })));
        await page.screenshot({ path: shot(`run_${job.run}`) });
        result.run = { promptId, status: answer, finished: Boolean(history), shown, screenshot: shot(`run_${job.run}`) };
        if (job.readme) await readmeShots(page);
    }
    await browser.close();
}

async function clip(page, box, name) {
    const p = shot(name);
    await page.screenshot({ path: p, clip: box });
    result.readme.push(p);
}

async function nodeBox(page, ids, pad = 30) {
    return page.evaluate(([nodeIds, margin]) => {
        const app = window.app;
        const rect = app.canvas.canvas.getBoundingClientRect();
        let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
        for (const id of nodeIds) {
            const n = app.graph.getNodeById(id);
            const [ax, ay] = app.canvas.ds.convertOffsetToCanvas([n.pos[0], n.pos[1] - 32]);
            const [bx, by] = app.canvas.ds.convertOffsetToCanvas([n.pos[0] + n.size[0], n.pos[1] + n.size[1]]);
            x0 = Math.min(x0, ax); y0 = Math.min(y0, ay); x1 = Math.max(x1, bx); y1 = Math.max(y1, by);
        }
        return { x: Math.max(0, rect.left + x0 - margin), y: Math.max(0, rect.top + y0 - margin),
            width: x1 - x0 + 2 * margin, height: y1 - y0 + 2 * margin };
    }, [ids, pad]);
}

async function readmeShots(page) {
    // 1. The anonymize run, its nodes showing their previews (the page as it is after the run).
    await clip(page, { x: 0, y: 0, width: 1600, height: 900 }, "readme_anonymize_run");

    // 2. The model picker: the Detector Loader's menu, grouped, with files present or missing.
    const loader = await page.evaluate(() => window.app.graph.nodes.find((n) => n.type === "MaskMarginDetectorLoader").id);
    await page.evaluate((id) => {
        const app = window.app;
        const node = app.graph.getNodeById(id);
        app.canvas.ds.scale = 1.2;
        app.canvas.ds.offset = [-node.pos[0] + 60, -node.pos[1] + 60];
        app.canvas.setDirty(true, true);
    }, loader);
    await settle(page, 300);
    const point = await canvasPoint(page, loader, "model");
    await page.mouse.click(point.x, point.y);
    await page.waitForSelector(".litecontextmenu.maskmargin-models", { timeout: 5000 });
    await settle(page, 300);
    const menu = await page.locator(".litecontextmenu.maskmargin-models").boundingBox();
    const box = await nodeBox(page, [loader], 20);
    const x0 = Math.min(box.x, menu.x) , y0 = Math.min(box.y, menu.y);
    const x1 = Math.max(box.x + box.width, menu.x + menu.width) + 20, y1 = Math.max(box.y + box.height, menu.y + menu.height) + 20;
    await clip(page, { x: x0, y: y0, width: Math.min(1600 - x0, x1 - x0), height: Math.min(900 - y0, y1 - y0) },
        "readme_model_picker");
    await page.keyboard.press("Escape");
    await page.mouse.click(5, 450);
    await settle(page, 200);

    // 3. The API key setting: Settings > MaskMargin.
    await page.evaluate(() => window.app.extensionManager.command.execute("Comfy.ShowSettingsDialog"));
    await page.waitForSelector(".p-dialog", { timeout: 10000 });
    await settle(page, 500);
    await page.locator(".p-dialog").getByText("MaskMargin", { exact: true }).first().click();
    await page.waitForSelector(".maskmargin-remote-setting", { timeout: 10000 });
    await settle(page, 800);
    const dialog = await page.locator(".p-dialog").first().boundingBox();
    await clip(page, dialog, "readme_api_key_setting");
    await closeDialogs(page);
}

main().then(
    () => process.stdout.write(JSON.stringify(result)),
    (error) => {
        result.fatal = String(error.stack ?? error);
        process.stdout.write(JSON.stringify(result));
        process.exit(1);
    },
);
