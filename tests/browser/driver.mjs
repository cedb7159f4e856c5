// Drives ComfyUI's real frontend in Debian's chromium through playwright-core (no browser download).
//
//   node tests/browser/driver.mjs <job.json>
//
// job.json: {"url": "http://127.0.0.1:PORT", "out": "<folder for screenshots>", "chromium": "/usr/bin/chromium",
//            "workflows": {"<name>": <UI-format workflow>, ...}, "run": "<name of the workflow to run>",
//            "apiKey": "<a throwaway key to save and clear through Settings > MaskMargin>",
//            "probe": <a workflow with an unknown node type, to show the missing-node checks work>}
// Prints one JSON object on stdout: per workflow the node types the frontend does not know, whether a
// missing-nodes dialog opened and the screenshot; the run's prompt_id; every console error and page error
// (with the script URL it came from); the model picker's entries; what the API key setting showed and what
// the page held after saving a key. Screenshots of each step go to "out".
// The assertions live in tests/test_browser.py.

import { readFileSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const job = JSON.parse(readFileSync(process.argv[2], "utf8"));
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update"];
const result = { workflows: {}, console: [], pageErrors: [], run: null, picker: null, apiKey: null };

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

/** Zoom and pan so every node fits below the top bar; returns the nodes' box on the page. */
async function fitView(page, maxScale = 1.25) {
    const box = await page.evaluate((most) => {
        const app = window.app;
        const title = window.LiteGraph.NODE_TITLE_HEIGHT;
        const nodes = app.graph.nodes;
        const x0 = Math.min(...nodes.map((n) => n.pos[0])), y0 = Math.min(...nodes.map((n) => n.pos[1] - title));
        const x1 = Math.max(...nodes.map((n) => n.pos[0] + n.size[0])), y1 = Math.max(...nodes.map((n) => n.pos[1] + n.size[1]));
        const rect = app.canvas.canvas.getBoundingClientRect();
        // Below the workflow tabs, the breadcrumb and the Run button; right of the side bar.
        const top = 110, side = (document.querySelector(".side-tool-bar-container")?.getBoundingClientRect().right ?? 60) - rect.left;
        const margin = 30;
        const scale = Math.min(most, (rect.width - side - 2 * margin) / (x1 - x0), (rect.height - top - margin) / (y1 - y0));
        const width = (x1 - x0) * scale, height = (y1 - y0) * scale;
        const left = side + (rect.width - side - width) / 2, upper = top + (rect.height - top - margin - height) / 2;
        app.canvas.ds.scale = scale;
        app.canvas.ds.offset = [left / scale - x0, upper / scale - y0];
        app.canvas.setDirty(true, true);
        return { x: rect.left + left, y: rect.top + upper, width, height };
    }, maxScale);
    await settle(page, 500);
    return box;
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

    if (job.probe) { // a workflow with a node type nobody has: the checks below must see it
        result.probe = await load(page, "probe", job.probe);
        await closeDialogs(page);
    }
    for (const [name, workflow] of Object.entries(job.workflows)) {
        const before = result.console.length;
        const loaded = await load(page, name, workflow);
        const box = await fitView(page);
        await page.screenshot({ path: shot(`workflow_${name}`) });
        const errors = result.console.slice(before).filter((e) => e.type === "error");
        result.workflows[name] = { ...loaded, errors, screenshot: shot(`workflow_${name}`), nodesBox: box };
        await closeDialogs(page);
    }

    if (job.run) {
        await load(page, job.run, job.workflows[job.run]);
        await fitView(page);
        await page.evaluate(() => {
            window.__maskmarginExecuted = [];
            window.app.api.addEventListener("executed", ({ detail }) => window.__maskmarginExecuted.push(detail));
        });
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
        await settle(page, 1000); // previews load after the "executed" messages
        const box = await fitView(page); // the nodes grew to show their previews
        const shown = await page.evaluate(() => window.app.graph.nodes.map((n) => ({
            id: n.id, type: n.type, imgs: n.imgs?.length ?? 0, counts: n.maskmarginCounts ?? null,
        })));
        await page.screenshot({ path: shot(`run_${job.run}`) });
        const executed = await page.evaluate(() => window.__maskmarginExecuted);
        result.run = { promptId, status: answer, finished: Boolean(history), shown, executed, screenshot: shot(`run_${job.run}`),
            nodesBox: box };
        result.picker = await modelPicker(page);
    }
    if (job.apiKey) result.apiKey = await apiKeySetting(page, job.apiKey);
    await browser.close();
}

async function clip(page, box, name) {
    const p = shot(name);
    const view = page.viewportSize();
    const x = Math.max(0, Math.floor(box.x)), y = Math.max(0, Math.floor(box.y));
    await page.screenshot({ path: p, clip: { x, y, width: Math.min(view.width - x, Math.ceil(box.width)),
        height: Math.min(view.height - y, Math.ceil(box.height)) } });
    return p;
}

function union(boxes, pad) {
    const x0 = Math.min(...boxes.map((b) => b.x)) - pad, y0 = Math.min(...boxes.map((b) => b.y)) - pad;
    const x1 = Math.max(...boxes.map((b) => b.x + b.width)) + pad, y1 = Math.max(...boxes.map((b) => b.y + b.height)) + pad;
    return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
}

async function nodeBox(page, id) {
    return page.evaluate((nodeId) => {
        const app = window.app;
        const rect = app.canvas.canvas.getBoundingClientRect();
        const n = app.graph.getNodeById(nodeId);
        const [ax, ay] = app.canvas.ds.convertOffsetToCanvas([n.pos[0], n.pos[1] - window.LiteGraph.NODE_TITLE_HEIGHT]);
        const [bx, by] = app.canvas.ds.convertOffsetToCanvas([n.pos[0] + n.size[0], n.pos[1] + n.size[1]]);
        return { x: rect.left + ax, y: rect.top + ay, width: bx - ax, height: by - ay };
    }, id);
}

/** Open the Detector Loader's model menu, pick face_yolov8n from it, open it again; what the user reads. */
async function modelPicker(page) {
    const loader = await page.evaluate(() => window.app.graph.nodes.find((n) => n.type === "MaskMarginDetectorLoader").id);
    await page.evaluate((id) => {
        const app = window.app;
        const node = app.graph.getNodeById(id);
        node.setSize([520, node.size[1]]); // wide enough that the menu, opened at its right, leaves the note readable
        node.pos = [node.pos[0], node.pos[1] + 240]; // below Image Mask, which the widening would reach under
        app.canvas.ds.scale = 1.25;
        app.canvas.ds.offset = [-node.pos[0] + 300, -node.pos[1] + 200];
        app.canvas.setDirty(true, true);
    }, loader);
    await settle(page, 300);
    const state = () => page.evaluate((id) => {
        const node = window.app.graph.getNodeById(id);
        return {
            value: node.widgets.find((w) => w.name === "model").value,
            note: node.widgets.find((w) => w.name === "maskmargin_note")?.lines().map(([t]) => t) ?? null,
            serialized: node.serialize().widgets_values,
        };
    }, loader);
    const menu = page.locator(".litecontextmenu.maskmargin-models");
    const open = async () => {
        const point = await canvasPoint(page, loader, "model");
        const box = await nodeBox(page, loader);
        await page.mouse.click(box.x + box.width - 60, point.y); // at the right: the note stays visible
        await menu.waitFor({ timeout: 5000 });
        await settle(page, 300);
    };
    const before = await state();
    await open();
    const entries = await menu.locator(".litemenu-entry").evaluateAll((els) => els.map((e) => ({
        text: e.innerText, group: e.classList.contains("maskmargin-menu-group"),
    })));
    await menu.locator(".litemenu-entry", { hasText: "face_yolov8n" }).first().click();
    await menu.waitFor({ state: "detached", timeout: 5000 });
    await settle(page, 300);
    const picked = await state();
    picked.remoteNote = await page.evaluate((id) => { // the same model with where = remote
        const node = window.app.graph.getNodeById(id);
        const where = node.widgets.find((w) => w.name === "where");
        where.value = "remote";
        const note = node.widgets.find((w) => w.name === "maskmargin_note").lines().map(([t]) => t);
        where.value = "local";
        return note;
    }, loader);
    await open();
    const picture = await clip(page, union([await nodeBox(page, loader), await menu.boundingBox()], 16), "model_picker");
    await page.keyboard.press("Escape");
    await page.mouse.click(page.viewportSize().width - 300, page.viewportSize().height - 100);
    await settle(page, 200);
    return { before, entries, picked, screenshot: picture };
}

/** Settings > MaskMargin: save a key, read what the page and the settings store hold, clear it. */
async function apiKeySetting(page, key) {
    const read = () => page.evaluate(async () => ({
        settingValue: window.app.extensionManager.setting.get("MaskMargin.Remote.APIKey"),
        localStorage: JSON.stringify({ ...window.localStorage }),
        settings: JSON.stringify(await (await window.app.api.fetchApi("/settings")).json()),
        workflow: JSON.stringify(window.app.graph.serialize()),
    }));
    await page.evaluate(() => window.app.extensionManager.command.execute("Comfy.ShowSettingsDialog"));
    const dialog = page.locator(".p-dialog").first();
    await dialog.waitFor({ timeout: 10000 });
    await dialog.getByText("MaskMargin", { exact: true }).first().click();
    const row = page.locator(".maskmargin-remote-setting").filter({ has: page.locator("input.maskmargin-apiKey") });
    const status = row.locator(".maskmargin-remote-status");
    await status.filter({ hasText: /not set|key set|error/ }).waitFor({ timeout: 10000 });
    const before = await status.innerText();
    const input = row.locator("input.maskmargin-apiKey");
    const inputType = await input.getAttribute("type");
    await input.fill(key);
    await row.getByRole("button", { name: "Save" }).click();
    await status.filter({ hasText: /key set|error/ }).waitFor({ timeout: 10000 });
    await settle(page, 300);
    const afterSave = { status: await status.innerText(), inputValue: await input.inputValue(), ...(await read()) };
    const frame = await dialog.boundingBox();
    const picture = await clip(page, { ...frame, height: Math.min(frame.height, 600) }, "api_key_setting"); // no empty half
    await row.getByRole("button", { name: "Clear" }).click();
    await status.filter({ hasText: "not set" }).waitFor({ timeout: 10000 });
    const afterClear = await status.innerText();
    await closeDialogs(page);
    return { before, inputType, afterSave, afterClear, screenshot: picture };
}

main().then(
    () => process.stdout.write(JSON.stringify(result)),
    (error) => {
        result.fatal = String(error.stack ?? error);
        process.stdout.write(JSON.stringify(result));
        process.exit(1);
    },
);
