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
        // the card itself focused, never a control inside or outside one: their keys stay theirs
        const card = event.target;
        if ((event.key === "Enter" || event.key === " ") && !event.repeat && card.matches
                && card.matches("#overview .card[data-stream]")) {
            event.preventDefault();
            select(card);
        }
    });
})();
