"""Upload an exported classifier to the Hugging Face Hub (``tdmixup export --push-to-hub``).

Through :mod:`huggingface_hub` (``create_repo`` then ``upload_folder``). The token comes from the
usual places, read by huggingface_hub itself: ``HF_TOKEN``, or the cache of
``huggingface-cli login``; tdmixup never reads, prints or writes it.
"""

from __future__ import annotations

from pathlib import Path


def push_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    commit_message: str = "Upload tdmixup classifier",
) -> str:
    """Create ``repo_id`` (a model repo; kept when it exists) and upload ``folder`` to it.

    Returns:
        The URL of the upload's commit.

    Raises:
        ValueError: ``repo_id`` is not ``owner/name``, or the Hub refused (one line: why).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"--push-to-hub {repo_id}: expected a repository id OWNER/NAME")
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="model",
            commit_message=commit_message,
        )
    except HfHubHTTPError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(
            f"--push-to-hub {repo_id}: the Hub refused ({first}); log in with "
            "`huggingface-cli login` or set HF_TOKEN to a token with write access"
        ) from err
    return str(getattr(info, "commit_url", info))
