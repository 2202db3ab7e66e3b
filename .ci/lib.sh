# Helpers of .ci/run, in a file of their own so that tests/test_ci.py can run them.

# copy_tracked SRC DEST: the files git tracks in SRC into DEST, as they are in SRC's working
# tree (a developer's uncommitted edits included, a new file once `git add`ed, a tracked file
# deleted there left out), and nothing git does not track: a demo folder, a ledger, a
# virtualenv or build output in a developer's checkout are not the project (the quick start's
# 200 MB testledger-demo/ was copied once, and failed the check). CI works on a clean clone,
# where this is HEAD.
copy_tracked() {
    local source=$1 target=$2
    git -C "$source" ls-files -z | (
        cd "$source" &&
            while IFS= read -r -d '' file; do
                if [ -e "$file" ] || [ -L "$file" ]; then printf '%s\0' "$file"; fi
            done | xargs -0 -r cp -P --parents -t "$target"
    )
}

# remove_on_exit PATH...: PATHs that remove_registered removes; .ci/run calls it from its EXIT
# trap, so that its temporary folders go however it ends (a failed step under set -e too).
REMOVE_ON_EXIT=()
remove_on_exit() {
    REMOVE_ON_EXIT+=("$@")
}
remove_registered() {
    if [ "${#REMOVE_ON_EXIT[@]}" -gt 0 ]; then
        rm -rf -- "${REMOVE_ON_EXIT[@]}"
    fi
}
