/* "Check a file": the audio player's position drives a cursor on the file's window timeline and a readout of the
 * window under it, in the browser alone: no request to the server as it plays or when the user seeks.
 *
 * The page renders every window of the checked file as JSON in #file-windows' data-windows (start and end in
 * seconds, the window's own answer, its probability, its tags and the stream state the daemon would have had).
 * The window under the cursor at time t is the newest window that has started by t: the timeline plots each
 * window at its start, so it is the point at or left of the cursor, and its audio holds t. */
(function () {
    "use strict";

    let cache = {raw: null, windows: []};

    function windows() {
        const el = document.getElementById("file-windows");
        const raw = el ? el.dataset.windows || "[]" : "[]";
        if (raw !== cache.raw) {
            cache = {raw: raw, windows: JSON.parse(raw)};
        }
        return cache.windows;
    }

    function windowAt(ws, t) {
        let lo = 0, hi = ws.length - 1, found = 0;
        while (lo <= hi) {  // windows are in time order: the last one whose start is at or before t
            const mid = (lo + hi) >> 1;
            if (ws[mid].start <= t) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
        }
        return found;
    }

    function clock(t) {
        const s = Math.max(0, Math.floor(t));
        return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
    }

    function span(text, cls) {
        const el = document.createElement("span");
        el.className = cls;
        el.textContent = text;  // text, never markup: names come from the model and the file
        return el;
    }

    function show(readout, w, index, t) {
        readout.dataset.time = t.toFixed(3);
        readout.dataset.window = String(index);
        const parts = [span(clock(t), "cursor-time"),
                       span(w.answer, "cursor-genre state-" + w.kind),
                       span(w.kind === "genre" ? Math.round(100 * w.probability) + "%" : "", "cursor-prob"),
                       span("window " + w.start.toFixed(1) + "–" + w.end.toFixed(1) + " s", "cursor-window"),
                       span("stream state: " + w.state, "cursor-state")];
        const chips = document.createElement("span");
        chips.className = "chips";
        (w.tags || []).forEach(function (tag) { chips.appendChild(span(tag, "chip")); });
        parts.push(chips);
        readout.replaceChildren.apply(readout, parts);
    }

    let retrying = false;

    // The timeline may not be drawn yet (a seek just after the upload, on a busy machine): then the cursor stayed at
    // 0 s while the readout said 1.5 s, until the next timeupdate, which a paused player never sends. Tried again
    // at each frame while the player is shown and its timeline is not drawn.
    function moveCursor(t) {
        const graph = document.querySelector("#file-timeline .js-plotly-plot");
        if (graph && window.Plotly && graph.layout && graph.layout.shapes && graph.layout.shapes.length) {
            window.Plotly.relayout(graph, {"shapes[0].x0": t, "shapes[0].x1": t});
            return;
        }
        const box = document.getElementById("file-player-box");
        if (!retrying && box && !box.hidden) {
            retrying = true;
            window.requestAnimationFrame(function () {
                retrying = false;
                const audio = document.getElementById("file-player");
                if (audio) {
                    moveCursor(audio.currentTime);
                }
            });
        }
    }

    function follow(audio) {
        const ws = windows();
        const readout = document.getElementById("file-cursor");
        if (!ws.length || !readout) {
            return;
        }
        const t = audio.currentTime;
        const index = windowAt(ws, t);
        if (readout.dataset.window !== String(index) || !readout.firstChild) {
            show(readout, ws[index], index, t);
        } else {
            readout.dataset.time = t.toFixed(3);
            readout.firstChild.textContent = clock(t);
        }
        moveCursor(t);
    }

    // A new file's result: show its first window (or where the player already is) without waiting for an event.
    window.genrecastPlayer = {
        refresh: function () {
            const audio = document.getElementById("file-player");
            const readout = document.getElementById("file-cursor");
            if (readout) { delete readout.dataset.window; }
            if (audio) { follow(audio); }
        },
    };

    // Media events do not bubble: listen in the capture phase, for a player the page may redraw at any time.
    ["timeupdate", "seeked", "loadedmetadata"].forEach(function (name) {
        document.addEventListener(name, function (event) {
            if (event.target && event.target.id === "file-player") {
                follow(event.target);
            }
        }, true);
    });
})();
