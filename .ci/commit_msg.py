"""The house rule for commit messages: the subject is one line of at most 72 characters; the detail goes
in the body, after a blank line. The commit-msg hook of .pre-commit-config.yaml runs it on the message
being committed; `--range` checks commits already made.

    python .ci/commit_msg.py .git/COMMIT_EDITMSG      # a message file (what the hook passes)
    python .ci/commit_msg.py --range main..HEAD       # every commit of a range
"""

import subprocess
import sys

MAX_SUBJECT = 72


def problems(message):
    """What is wrong with `message` (git's comment lines and everything below the scissors line ignored)."""
    lines = []
    for line in message.splitlines():
        if line.startswith("# ------------------------ >8 ------------------------"):
            break
        if not line.startswith("#"):
            lines.append(line.rstrip())
    while lines and not lines[0]:
        lines.pop(0)
    if not lines:
        return ["the message is empty"]
    found = []
    subject = lines[0]
    if len(subject) > MAX_SUBJECT:
        found.append(f"the subject has {len(subject)} characters, at most {MAX_SUBJECT}: {subject!r}")
    if len(lines) > 1 and lines[1]:
        found.append("the subject is one line: leave a blank line before the body")
    return found


def main(argv):
    if argv[:1] == ["--range"] and len(argv) == 2:
        shas = subprocess.run(["git", "rev-list", "--no-merges", argv[1]], capture_output=True, text=True,
                              check=True).stdout.split()
        messages = {sha: subprocess.run(["git", "log", "-1", "--format=%B", sha], capture_output=True,
                                        text=True, check=True).stdout for sha in shas}
    elif len(argv) == 1:
        with open(argv[0], encoding="utf-8") as f:
            messages = {argv[0]: f.read()}
    else:
        sys.exit(__doc__)
    bad = {name: found for name, message in messages.items() if (found := problems(message))}
    for name, found in bad.items():
        for problem in found:
            print(f"{name[:12]}: {problem}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
