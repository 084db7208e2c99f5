/* A click on a stream's card (or Enter or Space on one, with the keyboard) selects that stream, as the Stream
 * picker does: the picker's value is set in the browser and the page's callbacks follow. One listener for the whole
 * overview, so the cards, redrawn every half second, need none of their own. */
(function () {
    "use strict";

    function select(card) {
        if (card && window.dash_clientside && window.dash_clientside.set_props) {
            window.dash_clientside.set_props("stream-select", {value: card.dataset.stream});
        }
    }

    document.addEventListener("click", function (event) {
        select(event.target.closest("#overview .card[data-stream]"));
    });
    document.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
            const card = event.target.closest && event.target.closest("#overview .card[data-stream]");
            if (card) {
                event.preventDefault();
                select(card);
            }
        }
    });
})();
