"""The bundled web client is served at /ui/, and only its own files are."""
import os
import unittest

from harness import Node, SOURCE


class WebClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = Node(name="webclient",
                        extra_args=("--webclient", os.path.join(SOURCE, "webclient")))
        cls.node.start()

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()
        cls.node.cleanup()

    def test_ui_serves_the_page(self):
        status, headers, body = self.node.request("GET", "/ui/")
        self.assertEqual(status, 200)
        self.assertIn("text/html", headers.get("content-type", ""))
        self.assertIn(b"<title>ringkv</title>", body)

    def test_modules_and_styles_are_served_with_their_types(self):
        # Browsers refuse an ES module served under a non-JavaScript type.
        for path, kind in (("/ui/js/app.js", "javascript"), ("/ui/js/views/record.js", "javascript"),
                           ("/ui/style.css", "text/css"), ("/ui/favicon.svg", "image/svg+xml")):
            status, headers, _ = self.node.request("GET", path)
            self.assertEqual(status, 200, path)
            self.assertIn(kind, headers.get("content-type", ""), path)

    def test_root_and_bare_ui_redirect_to_ui(self):
        for path in ("/", "/ui"):
            status, headers, _ = self.node.request("GET", path)
            self.assertEqual(status, 302, path)
            self.assertEqual(headers.get("location"), "/ui/")

    def test_no_file_outside_the_web_client(self):
        for path in ("/ui/../README.md", "/ui/%2e%2e/README.md", "/ui/..%2fREADME.md",
                     "/ui/missing.js"):
            status, _, body = self.node.request("GET", path)
            self.assertEqual(status, 404, (path, body))


if __name__ == "__main__":
    unittest.main()
