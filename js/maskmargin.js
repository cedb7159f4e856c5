// MaskMargin's frontend extension (plain ES module, no build step; ComfyUI serves it from WEB_DIRECTORY).
//
// - Detector Loader: the model picker opens grouped (face, facial features, hands, people, extras, your
//   files), each entry saying what it masks and whether its file is here; a note under the combo says
//   the same for the chosen model. The combo's values stay the plain model names that workflows store.
// - Image Mask: after a run, how many objects were found in each image, above its previews.
// - Settings > MaskMargin: the remote API key (and URL), sent to the server with POST /maskmargin/api_key.
//   The settings store never holds them: the setting's own value stays "" and the page only learns
//   whether a key is set (GET /maskmargin/api_key), never the key.

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const EXTENSION = "MaskMargin.Frontend";
const NOTE = "maskmargin_note"; // our canvas-drawn note widgets: never serialized, never sent to the server
const GROUP_LABELS = {
    face: "Faces",
    "facial features": "Facial features (face mesh)",
    hands: "Hands",
    people: "People",
    extras: "Extras (offline, not in the API)",
    user: "Your files (models/ultralytics)",
};
const COLORS = { ok: "#8fce8f", warn: "#f0a35e", info: "#aaa" };

// ------------------------------------------------------------------------------------------------
// Model descriptions from GET /maskmargin/models

let modelInfo = null; // {groups: [...], models: [{name, group, masks, needs_file, file_name, present, folder, ...}]}
let modelInfoRequest = null;

function refreshModelInfo() {
    modelInfoRequest ??= api
        .fetchApi("/maskmargin/models", { cache: "no-store" })
        .then((response) => (response.ok ? response.json() : null))
        .then((info) => {
            if (info?.models) modelInfo = info;
            app.graph?.setDirtyCanvas(true, false);
            return modelInfo;
        })
        .catch(() => modelInfo) // offline server or older pack: the picker stays ComfyUI's own
        .finally(() => {
            modelInfoRequest = null;
        });
    return modelInfoRequest;
}

function describeModel(name) {
    return modelInfo?.models.find((m) => m.name === name) ?? null;
}

/** What the note under the combo says: [[text, colour], ...], one entry per line before wrapping. */
function modelNote(name, where) {
    const info = describeModel(name);
    if (!info) return modelInfo ? [[`${name}: a file in models/ultralytics`, COLORS.info]] : [];
    const lines = [[`masks ${info.masks}` + (info.air ? ` (${info.air})` : ""), COLORS.info]];
    if (where === "remote") {
        lines.push(info.remote
            ? [`runs on the Image Masking API (${info.air}): no file needed here`, COLORS.ok]
            : ["local only: set where to local (only the 15 API models run remotely)", COLORS.warn]);
    } else if (!info.needs_file) {
        lines.push(["runs MediaPipe's files from models/mediapipe (install.py fetches them)", COLORS.ok]);
    } else if (info.present) {
        lines.push([`${info.file_name} in ${info.folder}: present`, COLORS.ok]);
    } else {
        lines.push([`needs ${info.file_name} in ${info.folder}: missing`, COLORS.warn]);
    }
    return lines;
}

function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function menuLabel(entry, current) {
    let state = "";
    if (entry.needs_file) {
        state = entry.present
            ? ' <span style="color:#8fce8f">file present</span>'
            : ' <span style="color:#f0a35e">file missing</span>';
    }
    const mark = entry.name === current ? "&#10003; " : "";
    return `${mark}<b>${escapeHtml(entry.name)}</b> <span style="opacity:.65">${escapeHtml(entry.masks)}</span>${state}`;
}

/** Open the Detector Loader's model menu grouped by what the models mask; values stay the model names. */
function openGroupedMenu(widget, { e, node, canvas }) {
    const values = widget.options.values;
    const byName = new Map((modelInfo?.models ?? []).map((m) => [m.name, m]));
    const groups = new Map((modelInfo?.groups ?? []).map((g) => [g, []]));
    for (const name of values) {
        const entry = byName.get(name) ?? { name, group: "user", masks: "your model", needs_file: false };
        if (!groups.has(entry.group)) groups.set(entry.group, []);
        groups.get(entry.group).push(entry);
    }
    const items = [];
    for (const [group, entries] of groups) {
        if (!entries.length) continue;
        items.push({
            content: escapeHtml(GROUP_LABELS[group] ?? group),
            disabled: true,
            className: "maskmargin-menu-group",
        });
        for (const entry of entries) {
            items.push({ content: menuLabel(entry, widget.value), value: entry.name, className: "maskmargin-menu-model" });
        }
    }
    // Not className "dark" alone: ComfyUI's combo filter assumes the menu items are the combo's values.
    new LiteGraph.ContextMenu(items, {
        scale: Math.max(1, canvas.ds.scale),
        event: e,
        className: "dark maskmargin-models",
        callback: (item) => {
            if (item && typeof item === "object" && item.value !== undefined) {
                widget.setValue(item.value, { e, node, canvas });
                node.setDirtyCanvas(true, true);
            }
        },
    });
}

// ------------------------------------------------------------------------------------------------
// A note widget: a few lines of small text drawn on the canvas under the node's widgets

function wrapLines(ctx, lines, width) {
    const out = [];
    for (const [text, color] of lines) {
        let line = "";
        for (const word of text.split(" ")) {
            const candidate = line ? `${line} ${word}` : word;
            if (line && ctx.measureText(candidate).width > width) {
                out.push([line, color]);
                line = word;
            } else {
                line = candidate;
            }
        }
        if (line) out.push([line, color]);
    }
    return out;
}

const LINE_HEIGHT = 15;
const FONT = "12px Arial, sans-serif";
let measureContext = null;

function addNote(node, lines) {
    const widget = {
        type: NOTE,
        name: NOTE,
        value: "",
        serialize: false,
        options: { serialize: false },
        lines, // () => [[text, colour], ...]
        wrapped(width) {
            measureContext ??= document.createElement("canvas").getContext("2d");
            measureContext.font = FONT;
            return wrapLines(measureContext, this.lines(), width - 30);
        },
        computeSize(width) {
            // Wrapped at the node's real width: litegraph asks with its minimum width, which would wrap more.
            const count = this.wrapped(Math.max(width ?? 0, node.size[0])).length;
            return [width ?? node.size[0], count ? count * LINE_HEIGHT + 6 : 0];
        },
        draw(ctx, drawnNode, width, y) {
            const wrapped = this.wrapped(width);
            ctx.save();
            ctx.font = FONT;
            ctx.textAlign = "left";
            ctx.textBaseline = "top";
            wrapped.forEach(([text, color], i) => {
                ctx.fillStyle = color;
                ctx.fillText(text, 15, y + 3 + i * LINE_HEIGHT);
            });
            ctx.restore();
        },
    };
    node.addCustomWidget(widget);
    return widget;
}

/** Grow the node so its widgets (and our note) fit; never shrink what the user sized. */
function fitNode(node) {
    const min = node.computeSize();
    if (min[0] > node.size[0] || min[1] > node.size[1]) {
        node.setSize([Math.max(node.size[0], min[0]), Math.max(node.size[1], min[1])]);
    }
    node.setDirtyCanvas(true, true);
}

// ------------------------------------------------------------------------------------------------
// Node hooks

function setupDetectorLoader(nodeType) {
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
        const result = onNodeCreated?.apply(this, arguments);
        const model = this.widgets?.find((w) => w.name === "model");
        if (!model) return result;
        const where = () => this.widgets?.find((w) => w.name === "where")?.value ?? "local";
        const original = model.onClick;
        model.onClick = function (options) {
            const { e, node } = options;
            const x = e.canvasX - node.pos[0];
            const width = this.width || node.size[0];
            void refreshModelInfo(); // files may have been added since; the note updates when it answers
            if (!modelInfo || x < 40 || x > width - 40) return original.call(this, options);
            return openGroupedMenu(this, options);
        };
        addNote(this, () => modelNote(model.value, where()));
        for (const widget of this.widgets) { // the note's length follows the choice: keep it inside the node
            if (widget.name !== "model" && widget.name !== "where") continue;
            const callback = widget.callback;
            widget.callback = (...args) => {
                const answer = callback?.apply(widget, args);
                fitNode(this);
                return answer;
            };
        }
        refreshModelInfo().then(() => fitNode(this));
        fitNode(this);
        return result;
    };
    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
        const result = onConfigure?.apply(this, arguments);
        requestAnimationFrame(() => fitNode(this)); // a saved workflow's size predates the note
        return result;
    };
}

function detectionsNote(counts) {
    if (!counts?.length) return [];
    if (counts.length === 1) {
        const n = counts[0];
        return [[n === 1 ? "1 detection" : `${n} detections`, n ? COLORS.ok : COLORS.warn]];
    }
    const total = counts.reduce((a, b) => a + b, 0);
    const empty = counts.filter((n) => n === 0).length;
    return [[
        `${total} detections in ${counts.length} images (${counts.join(", ")})` + (empty ? `; ${empty} without any` : ""),
        empty ? COLORS.warn : COLORS.ok,
    ]];
}

function setupImageMask(nodeType) {
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
        const result = onNodeCreated?.apply(this, arguments);
        this.maskmarginCounts = null;
        addNote(this, () => detectionsNote(this.maskmarginCounts));
        return result;
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
        const result = onExecuted?.apply(this, arguments);
        const counts = output?.maskmargin_counts;
        this.maskmarginCounts = Array.isArray(counts) ? counts.map(Number) : null;
        fitNode(this);
        return result;
    };
}

// ------------------------------------------------------------------------------------------------
// Settings: the remote key and URL, kept on the server

async function remoteStatus() {
    const response = await api.fetchApi("/maskmargin/api_key", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.json();
}

async function saveRemote(body) {
    const response = await api.fetchApi("/maskmargin/api_key", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.error ?? `HTTP ${response.status}`);
    return answer;
}

function element(tag, props = {}, ...children) {
    const el = Object.assign(document.createElement(tag), props);
    el.append(...children);
    return el;
}

function button(label, onclick) {
    return element("button", {
        type: "button",
        textContent: label,
        className: "p-button p-component p-button-sm p-button-secondary",
        onclick,
        style: "padding: 0.3rem 0.6rem",
    });
}

/**
 * A settings row whose value lives on the server, not in the settings store: `field` is "apiKey" or
 * "apiUrl". The setter ComfyUI passes is never called, so the stored setting stays "".
 */
function serverField(field) {
    return () => {
        const secret = field === "apiKey";
        const input = element("input", {
            type: secret ? "password" : "url",
            autocomplete: secret ? "new-password" : "off",
            spellcheck: false,
            placeholder: secret ? "paste a key, then Save" : "https://api.runware.ai/v1",
            className: "p-inputtext p-component maskmargin-" + field,
            style: "width: 14rem",
        });
        input.dataset.lpignore = "true"; // password managers: not a login
        const status = element("span", { className: "maskmargin-remote-status", style: "font-size: 0.85em; opacity: 0.8" });
        const show = (state) => {
            if (secret) {
                status.textContent = state.keySet
                    ? `key set (${state.keySource === "environment" ? "RUNWARE_API_KEY, wins over a saved key" : "saved on the server"})`
                    : "not set";
                status.style.color = state.keySet ? COLORS.ok : COLORS.warn;
            } else {
                status.textContent = `using ${state.apiUrl} (${state.apiUrlSource})`;
                status.style.color = "";
                input.placeholder = state.apiUrl;
            }
        };
        const fail = (error) => {
            status.textContent = `error: ${error.message}`;
            status.style.color = COLORS.warn;
        };
        const save = async (value) => {
            try {
                show(await saveRemote({ [field]: value }));
                input.value = "";
            } catch (error) {
                fail(error);
            }
        };
        input.addEventListener("keydown", (event) => {
            if (event.key === "Enter" && input.value.trim()) void save(input.value.trim());
        });
        remoteStatus().then(show, fail);
        return element(
            "div",
            { className: "maskmargin-remote-setting", style: "display: flex; flex-direction: column; gap: 0.3rem; align-items: flex-end" },
            element("div", { style: "display: flex; gap: 0.4rem; align-items: center" },
                input,
                button("Save", () => input.value.trim() && save(input.value.trim())),
                button(secret ? "Clear" : "Default", () => save(""))),
            status,
        );
    };
}

// ------------------------------------------------------------------------------------------------

app.registerExtension({
    name: EXTENSION,
    settings: [
        {
            id: "MaskMargin.Remote.APIKey",
            category: ["MaskMargin", "Remote masking", "API key"],
            name: "Image Masking API key (kept on the ComfyUI server, never in workflows)",
            tooltip: "Sent to this ComfyUI server only (POST /maskmargin/api_key) and saved in user/__maskmargin/. " +
                "Used when Detector Loader's where is remote. RUNWARE_API_KEY in the server's environment wins.",
            type: serverField("apiKey"),
            defaultValue: "",
            sortOrder: 2,
        },
        {
            id: "MaskMargin.Remote.APIUrl",
            category: ["MaskMargin", "Remote masking", "API URL"],
            name: "Image Masking API URL (Runware's, or your own maskmargin serve)",
            tooltip: "Saved on the server with the key. Default: https://api.runware.ai/v1; RUNWARE_API_URL wins.",
            type: serverField("apiUrl"),
            defaultValue: "",
            sortOrder: 1,
        },
    ],
    async beforeRegisterNodeDef(nodeType, nodeData) {
        if (nodeData?.name === "MaskMarginDetectorLoader") setupDetectorLoader(nodeType);
        if (nodeData?.name === "MaskMarginImageMask") setupImageMask(nodeType);
    },
    async setup() {
        await refreshModelInfo();
    },
});
