/* "Check a file": a file over the page's limit is refused in the browser (dcc.Upload's max_size), before any request,
 * and the upload's callback never hears of it: nothing happened, and an earlier file's result stayed on screen. The
 * same refusal is said here, in the words the server uses for its own limit (dashboard/offline.py). */
(function () {
    "use strict";

    function refuse(files) {
        const config = document.getElementById("page-config");
        const file = files && files[0];
        if (!config || !file || !window.dash_clientside || !window.dash_clientside.set_props) {
            return;
        }
        const limit = Number(config.dataset.uploadMaxBytes);
        if (file.size <= limit) {
            return;
        }
        // rounded up to a tenth: rounded down, 20.98 MiB read "20 MiB is over the page's 20 MiB limit"
        const mib = (Math.ceil(file.size / 104857.6) / 10).toFixed(1), limitMib = limit / 1048576;
        const player = document.getElementById("file-player");
        if (player) {
            player.pause();  // the earlier file's: hidden, it played on
        }
        window.dash_clientside.set_props("file-player-box", {hidden: true});
        window.dash_clientside.set_props("file-result", {children: {
            type: "Div", namespace: "dash_html_components",
            props: {className: "error", children: file.name + ": " + mib + " MiB is over the page's " + limitMib
                    + " MiB limit"},
        }});
    }

    document.addEventListener("change", function (event) {
        if (event.target.matches && event.target.matches("#upload input[type=file]")) {
            refuse(event.target.files);
        }
    }, true);
    document.addEventListener("drop", function (event) {
        if (event.target.closest && event.target.closest("#upload") && event.dataTransfer) {
            refuse(event.dataTransfer.files);
        }
    }, true);
})();
