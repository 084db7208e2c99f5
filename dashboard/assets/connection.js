/* The page's contact with its server. Its ages and pills are computed by the server, so when the server stops
 * answering nothing on the page ages: it froze while still saying "broker connected" and "0 s ago". Every answer to
 * the page's callbacks is watched here: none for a while puts a banner over the page and greys it, the next one
 * takes it away, and 401 (the session ended: logged out in another tab, the token changed) goes to the login form,
 * which brings the user back here.
 *
 * The tick is also paced by those answers. Dash drops an answer that a newer request for the same callback has
 * overtaken, so where a tick's answers take longer than a tick (a thousand streams on a busy machine) every one was
 * dropped and the selected stream's panel never drew. A tick's answers come in a chain of two (the stream's callback
 * waits for the overview's, which may change the selected stream), so the tick is kept at three times the recent
 * answers' median time (the chain, and time to draw it), and never under the page's own interval. */
(function () {
    "use strict";

    const CALLBACKS = "/_dash-update-component";
    const TICKED = '"tick.n_intervals"';  // in the body of a request the tick made (not an upload's)
    const SLOWEST_TICK_MS = 10000;
    let lastAnswer = Date.now();
    let banner = null;
    let tickMs = null;  // as last set here; null: the page's own
    const recent = [];  // the last answers' times, ms
    const CHAIN = 3;  // the tick per answer's time: two answers in a chain, and time to draw them

    function config(name, otherwise) {
        const el = document.getElementById("page-config");
        return el && el.dataset[name] ? Number(el.dataset[name]) : otherwise;
    }

    function staleAfterMs() {
        return Math.max(config("staleAfterMs", 5000), 3 * (tickMs || 0));
    }

    function pace(ms) {
        recent.push(ms);
        if (recent.length > 5) {
            recent.shift();
        }
        const sorted = recent.slice().sort(function (a, b) { return a - b; });
        const median = sorted[sorted.length >> 1];
        const base = config("refreshMs", 500);
        const wanted = Math.min(SLOWEST_TICK_MS, Math.max(base, Math.ceil(CHAIN * median / 250) * 250));
        const now = tickMs || base;
        if (Math.abs(wanted - now) >= 0.25 * now && window.dash_clientside && window.dash_clientside.set_props) {
            tickMs = wanted;
            window.dash_clientside.set_props("tick", {interval: wanted});
        }
    }

    function show(quietMs) {
        if (!banner) {
            banner = document.createElement("div");
            banner.id = "page-stale";
            banner.className = "stale-banner";
            banner.setAttribute("role", "alert");
            document.body.appendChild(banner);
        }
        const since = new Date(lastAnswer).toLocaleTimeString();
        banner.textContent = "Not current: the dashboard's server has not answered for " + Math.round(quietMs / 1000)
            + " s (since " + since + "). What is shown is as of then.";
        banner.hidden = false;
        document.body.classList.add("stale");
    }

    function hide() {
        if (banner) {
            banner.hidden = true;
        }
        document.body.classList.remove("stale");
    }

    const fetch = window.fetch.bind(window);
    window.fetch = function (resource, init) {
        const url = typeof resource === "string" ? resource : (resource && resource.url) || "";
        const answer = fetch(resource, init);
        if (url.indexOf(CALLBACKS) === -1) {
            return answer;
        }
        const asked = Date.now();
        const ticked = init && typeof init.body === "string" && init.body.indexOf(TICKED) !== -1;
        return answer.then(function (response) {
            if (response.status === 401) {
                window.location.assign("/login");
            } else if (response.status < 500) {  // answered (204: nothing changed): the page is current
                lastAnswer = Date.now();
                hide();
                if (ticked) {
                    pace(lastAnswer - asked);
                }
            }
            return response;
        });
    };

    setInterval(function () {
        const quiet = Date.now() - lastAnswer;
        if (quiet > staleAfterMs()) {
            show(quiet);
        }
    }, 1000);
})();
