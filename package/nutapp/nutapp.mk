################################################################################
#
# nutapp
#
################################################################################

# Built from the br2-external tree itself, so the version comes from
# the one place the Python project keeps it.
NUTAPP_VERSION = $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' \
	$(BR2_EXTERNAL_NUTAPP_PATH)/pyproject.toml)
NUTAPP_SITE = $(BR2_EXTERNAL_NUTAPP_PATH)
NUTAPP_SITE_METHOD = local
NUTAPP_LICENSE = MIT
NUTAPP_LICENSE_FILES = LICENSE
NUTAPP_SETUP_TYPE = setuptools

# Keep developer state (virtualenvs, build and test output) out of the
# copy Buildroot makes of the tree.
NUTAPP_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude .venv --exclude /out --exclude /output \
	--exclude build --exclude dist --exclude '*.egg-info' \
	--exclude .pytest_cache --exclude .hypothesis --exclude __pycache__

# The start-up scripts (overlay/etc/inittab, overlay/etc/init.d) come
# with the shared rootfs overlay, which the defconfigs name in
# BR2_ROOTFS_OVERLAY, so the Debian-package image runs the same ones.

$(eval $(python-package))
