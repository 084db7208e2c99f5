/* The page's contact with its server. Its ages and pills are computed by the server, so when the server stops
 * answering nothing on the page ages: it froze while still saying "broker connected" and "0 s ago". Every answer to
 * the page's callbacks is watched here: none for a while puts a banner over the page and greys it, the next one
 * takes it away, and 401 (the session ended: logged out in another tab, the token changed) goes to the login form,
 * which brings the user back here.
 *
 * The tick is also paced by those answers. Dash drops an answer that a newer request for the same callback has
 * overtaken, so where a tick's answers take longer than a tick (a thousand streams on a busy machine) every one was
 * dropped and the selected stream's panel never drew. A tick's answers come in a round: the stream's callback is
 * asked once the overview's answer is drawn (it may change the selected stream). So the tick is paced by the
 * round's time, from the overview's request to the stream's answer: 1.5 times the longest of the last five, never
 * under the page's own interval, at most 10 s. A round overtaken by the next tick while the server was answering
 * counts as two ticks; one the server did not answer (down, a 5xx) counts as nothing, nor does a hidden tab's,
 * whose timers the browser slows. It rises at once, and falls once it could halve or come back to the page's own. */
(function () {
    "use strict";

    const CALLBACKS = "/_dash-update-component";
    const TICKED = '"tick.n_intervals"';  // in the body of a request the tick made (not an upload's)
    const OUTPUT = /^\{"output":"([^"]*)"/;  // which callback a request is for: its body begins with its outputs
    const OVERVIEW = "overview.children", PANEL = "facts.children";  // the round's first and last callbacks
    const SLOWEST_TICK_MS = 10000;
    let lastAnswer = Date.now();
    let banner = null;
    let tickMs = null;  // as last set here; null: the page's own
    const recent = [];  // the last rounds' times, ms
    let roundStart = null;  // when the unfinished round's overview was asked

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
        if ((wanted >= 1.25 * now || (wanted < now && wanted <= Math.max(base, 0.5 * now)))
                && window.dash_clientside && window.dash_clientside.set_props) {
            tickMs = wanted;
            window.dash_clientside.set_props("tick", {interval: wanted});
            document.body.dataset.tickMs = String(wanted);  // to be seen (tests, a user's devtools)
        }
    }

    function callback(body) {
        const m = OUTPUT.exec(body);
        return m ? m[1] : "";
    }

    // A request made: the start of a round, or its stream request (which returns the round it belongs to)
    function asking(body) {
        const output = callback(body);
        if (output.indexOf(PANEL) !== -1) {
            return roundStart;
        }
        if (output.indexOf(OVERVIEW) === -1 || body.indexOf(TICKED) === -1) {
            return null;
        }
        const now = Date.now();
        if (roundStart !== null && lastAnswer >= roundStart && !document.hidden) {
            pace(2 * (tickMs || config("refreshMs", 500)));  // overtaken while answers came
        }
        roundStart = document.hidden ? null : now;
        return null;
    }

    function answered(round) {
        if (round !== null && round === roundStart) {
            pace(Date.now() - round);
            roundStart = null;
        }
    }

    document.addEventListener("visibilitychange", function () {
        roundStart = null;  // a hidden tab's timers are slowed: its rounds say nothing of the server
    });

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
        const round = asking(init && typeof init.body === "string" ? init.body : "");
        return answer.then(function (response) {
            if (response.status === 401) {
                window.location.assign("/login");
            } else if (response.status < 500) {  // answered (204: nothing changed): the page is current
                lastAnswer = Date.now();
                hide();
                answered(round);
            } else {
                roundStart = null;  // the server's failure, not its pace
            }
            return response;
        }, function (error) {
            roundStart = null;  // no answer at all: the banner's business, not the pace's
            throw error;
        });
    };

    setInterval(function () {
        const quiet = Date.now() - lastAnswer;
        if (quiet > staleAfterMs()) {
            show(quiet);
        }
    }, 1000);
})();
