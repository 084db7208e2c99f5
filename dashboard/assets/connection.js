/* Whether the page is current. Its ages and pills are computed by the server, so when the server stops answering
 * nothing on the page ages: it froze while still saying "broker connected" and "0 s ago". Every answer to the page's
 * callbacks is watched here: none for a while puts a banner over the page and greys it, the next one takes it away,
 * and 401 (the session ended: logged out in another tab, the token changed) goes to the login form, which brings
 * the user back here. */
(function () {
    "use strict";

    const CALLBACKS = "/_dash-update-component";
    let lastAnswer = Date.now();
    let banner = null;

    function staleAfterMs() {
        const config = document.getElementById("page-config");
        return config ? Number(config.dataset.staleAfterMs) : 5000;
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
        return answer.then(function (response) {
            if (response.status === 401) {
                window.location.assign("/login");
            } else if (response.status < 500) {  // answered (204: nothing changed): the page is current
                lastAnswer = Date.now();
                hide();
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
