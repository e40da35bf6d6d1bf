"""The README's examples run as written and print what the README says.

Every ```sh block of README.md is run, in order, in one bash session against
a fresh 3-node cluster like the one `make run` starts (N=3 R=2 W=2, nodes
named node1..node3; the README's 127.0.0.1:8001..8003 become their
addresses, and build/src/cli/ringkv the CLI under test). A command's output must match the
`# ...` lines under it, where `...` stands for anything (contexts,
timestamps). A command with no `# ` lines must still exit 0.
"""
import os
import re
import subprocess
import unittest

from harness import Cluster

SOURCE = os.environ.get("RINGKV_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.environ.get("RINGKV_CLI", os.path.join(SOURCE, "build", "src", "cli", "ringkv"))
SENTINEL = "__ringkv_readme_step__"


def readme_steps(text):
    """Yields (command, [expected lines]) for every command of every sh block."""
    steps = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        cmd, expected = None, []
        for line in block.splitlines():
            if line.startswith("# "):
                expected.append(line[2:])
                continue
            if not line.strip():
                continue
            if cmd is not None:
                steps.append((cmd, expected))
            cmd, expected = line, []
        if cmd is not None:
            steps.append((cmd, expected))
    return steps


def pattern(expected_line):
    return "^" + ".*?".join(re.escape(part) for part in expected_line.split("...")) + "$"


class ReadmeExamples(unittest.TestCase):
    def test_examples_run_as_written(self):
        with open(os.path.join(SOURCE, "README.md")) as f:
            steps = readme_steps(f.read())
        self.assertGreater(len(steps), 10, "README lost its examples")
        with Cluster(3, prefix="node") as cluster:
            script = ["set -u"]
            for cmd, _ in steps:
                for i, node in enumerate(cluster.nodes):
                    cmd = cmd.replace(f"127.0.0.1:{8001 + i}", node.http_addr)
                cmd = cmd.replace("build/src/cli/ringkv", CLI)
                script.append(cmd)
                script.append(f'echo "{SENTINEL} $?"')
            out = subprocess.run(["bash", "-c", "\n".join(script)], capture_output=True,
                                 text=True, timeout=120, cwd=SOURCE).stdout
        chunks = out.split(SENTINEL)
        self.assertEqual(len(chunks), len(steps) + 1, f"not every step ran:\n{out}")
        for i, (cmd, expected) in enumerate(steps):
            text = chunks[i]
            if i > 0:  # drop the previous step's " <status>\n"
                text = text.split("\n", 1)[1] if "\n" in text else ""
            status = chunks[i + 1].split("\n", 1)[0].strip()
            self.assertEqual(status, "0", f"step failed (exit {status}): {cmd}\n{text}")
            got = [l for l in text.splitlines() if l.strip()]
            if not expected:
                continue
            self.assertEqual(len(got), len(expected), f"{cmd}\nexpected:\n{expected}\ngot:\n{got}")
            for want, line in zip(expected, got):
                self.assertRegex(line, pattern(want), f"step: {cmd}")


if __name__ == "__main__":
    unittest.main()
