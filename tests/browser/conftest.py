"""The browser fixtures (``server``: the app on 127.0.0.1; ``chromium_page``: Debian's
Chromium at phone size) for every browser test; defined in test_learner_keyboard."""

from tests.browser.test_learner_keyboard import chromium_page, server  # noqa: F401
