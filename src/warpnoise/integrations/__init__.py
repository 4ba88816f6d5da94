"""Warped noise inside other tools' samplers and graphs.

- :mod:`.kdiffusion`: :class:`~.kdiffusion.WarpedNoiseSampler`, a k-diffusion
  ``noise_sampler(sigma, sigma_next)`` serving a fresh warped ``(T, C, h, w)`` sequence per call,
  and :func:`~.kdiffusion.warped_noise` for one sequence at pixel or latent resolution.
- :mod:`.sdedit`: SDEdit for video with a diffusers UNet/transformer and scheduler, every noise
  draw ours (``add_noise``/``scale_noise``, ``variance_noise``, or own DDPM/Euler-ancestral steps).
- :mod:`.video2video`: SDEdit for Wan/CogVideoX video pipelines, ``latents=`` noised to the step
  that ``strength`` starts from, with our noise.
- :mod:`.comfyui`: what the ComfyUI nodes call (IMAGE batches in, latent noise out), the same
  streaming core as ``warpnoise noise``.
"""
