/* The page's contact with its server. Its ages and pills are computed by the server, so when the server stops
 * answering nothing on the page ages: it froze while still saying "broker connected" and "0 s ago". Every answer to
 * the page's callbacks is watched here: none for a while puts a banner over the page and greys it, the next one
 * takes it away, and 401 (the session ended: logged out in another tab, the token changed) goes to the login form,
 * which brings the user back here.
 *
 * The tick is also paced by those answers. Dash drops an answer that a newer request for the same callback has
 * overtaken, so where a tick's answers take longer than a tick (a thousand streams on a busy machine) every one was
 * dropped and the selected stream's panel never drew. A tick's answers come in a chain: the stream's callback is
 * asked once the overview's answer is drawn (it may change the selected stream). So the tick is paced by the
 * chain's time, from the overview's request to the stream's answer, drawing included: 1.5 times the longest of the
 * last five, never under the page's own interval, at most 10 s; a chain overtaken by the next tick counts as two
 * ticks long. It rises at once and falls only once it could halve, so it does not flap. */
(function () {
    "use strict";

    const CALLBACKS = "/_dash-update-component";
    const TICKED = '"tick.n_intervals"';  // in the body of a request the tick made (not an upload's)
    const OVERVIEW = "overview.children", PANEL = "facts.children";  // the chain's first and last callbacks
    const SLOWEST_TICK_MS = 10000;
    let lastAnswer = Date.now();
    let banner = null;
    let tickMs = null;  // as last set here; null: the page's own
    const recent = [];  // the last chains' times, ms
    let chainStart = null;  // when the unfinished chain's overview was asked

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
        const base = config("refreshMs", 500);
        const wanted = Math.min(SLOWEST_TICK_MS, Math.max(base, Math.ceil(1.5 * Math.max.apply(null, recent) / 250)
            * 250));
        const now = tickMs || base;
        if ((wanted >= 1.25 * now || wanted <= 0.5 * now) && window.dash_clientside
                && window.dash_clientside.set_props) {
            tickMs = wanted;
            window.dash_clientside.set_props("tick", {interval: wanted});
            document.body.dataset.tickMs = String(wanted);  // to be seen (tests, a user's devtools)
        }
    }

    function asking(body) {
        if (body.indexOf(TICKED) === -1 || body.indexOf(OVERVIEW) === -1) {
            return;
        }
        const now = Date.now();
        if (chainStart !== null) {  // the last chain had not ended: overtaken
            pace(2 * (tickMs || config("refreshMs", 500)));
        }
        chainStart = now;
    }

    function answered(body) {
        if (chainStart !== null && body.indexOf(PANEL) !== -1) {
            pace(Date.now() - chainStart);
            chainStart = null;
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
        const body = init && typeof init.body === "string" ? init.body : "";
        asking(body);
        return answer.then(function (response) {
            if (response.status === 401) {
                window.location.assign("/login");
            } else if (response.status < 500) {  // answered (204: nothing changed): the page is current
                lastAnswer = Date.now();
                hide();
                answered(body);
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
