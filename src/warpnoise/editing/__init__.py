"""Editing a video with warped noise: the bundled and pretrained models, their metrics, the demo.

- :mod:`.edit`: :func:`~.edit.edit_frames` and :class:`~.edit.EditOptions`, what
  ``warpnoise edit`` runs (SDEdit or super-resolution of a clip, one warped sequence per step,
  through :func:`warpnoise.integrations.sdedit.sdedit`).
- :mod:`.models`: :func:`~.models.load_edit_model`, the bundled denoiser or a pretrained diffusers
  UNet pipeline (folder or hub id) as one :class:`~.models.EditModel`.
- :mod:`.denoiser` and :mod:`.sr`: the small pixel-space denoiser and 4x super-resolver the
  project trains and bundles.
- :mod:`.metrics`: what an edited video is judged by (warping error, detail that follows motion,
  detail that sticks to the screen, hallucinated detail, PSNR/SSIM).
- :mod:`.demo`: ``make demo``'s comparison of noises on the bundled clip.

Pretrained diffusers models need the ``diffusion`` extra (``pip install 'warpnoise[diffusion]'``).
"""
