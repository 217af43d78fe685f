"""The automatic re-apply, through the conductor's own evaluation: the triggers of the
tarball's metadata.yaml (behavior.evaluate_reapply), the overrides regenerated and compared,
the reapply flag, and the reapply itself up to where sysinv hands the manifests to FluxCD.

Each scenario reports the overrides before and after its trigger (see platform.report)."""

from __future__ import annotations

import base64

from sysinv.common import constants as sysinv_constants
from sysinv.tests.db import base as dbbase

from tests.fixtures.pki import TestCA
from tests.sysinv_real.platform import APP, PortierisPlatform, read_overrides, report

HOST_AVAILABILITY = sysinv_constants.APP_EVALUATE_REAPPLY_HOST_AVAILABILITY
RUNTIME_APPLY_PUPPET = sysinv_constants.APP_EVALUATE_REAPPLY_TYPE_RUNTIME_APPLY_PUPPET
ON_DEMAND = sysinv_constants.APP_EVALUATE_REAPPLY_TYPE_ON_DEMAND_REAPPLY
PROVISIONED = {
    "administrative": sysinv_constants.ADMIN_UNLOCKED,
    "operational": sysinv_constants.OPERATIONAL_ENABLED,
    "availability": sysinv_constants.AVAILABILITY_AVAILABLE,
    "vim_progress_status": sysinv_constants.VIM_SERVICES_ENABLED,
}


class SecondControllerComingUp(PortierisPlatform, dbbase.ProvisionedAIOHostTestCase):
    """A duplex system: controller-0 provisioned, controller-1 installed and being unlocked."""

    system_mode = sysinv_constants.SYSTEM_MODE_DUPLEX

    def setUp(self) -> None:
        super().setUp()
        self.host2 = self._create_test_host(
            sysinv_constants.CONTROLLER, sysinv_constants.WORKER, unit=1
        )
        self._create_test_host_cpus(self.host2, platform=2, vswitch=2, application=11)

    def test_services_enabled_regenerates_two_replicas_and_flags_the_reapply(self) -> None:
        before = self.applied()
        self.dbapi.ihost_update(self.host2.uuid, PROVISIONED)
        trigger = {"type": HOST_AVAILABILITY, "availability": sysinv_constants.VIM_SERVICES_ENABLED}
        self.conductor.evaluate_apps_reapply(self.context, trigger=trigger)
        after = read_overrides(self.rpc_app)
        report(
            "controller-1 services-enabled, trigger host-availability-updated",
            before,
            after,
            reapply_flagged=self.flagged_for_reapply(),
        )
        self.assertEqual((before["replicaCount"], after["replicaCount"]), (1, 2))
        self.assertTrue(self.flagged_for_reapply())

    def test_other_availability_changes_are_filtered_out(self) -> None:
        before = self.applied()
        self.dbapi.ihost_update(self.host2.uuid, PROVISIONED)
        trigger = {
            "type": HOST_AVAILABILITY,
            "availability": sysinv_constants.AVAILABILITY_AVAILABLE,
        }
        self.conductor.evaluate_apps_reapply(self.context, trigger=trigger)
        self.assertEqual(read_overrides(self.rpc_app), before, "not regenerated")
        self.assertFalse(self.flagged_for_reapply())


class ProvisionedDuplex(PortierisPlatform, dbbase.ProvisionedAIODuplexSystemTestCase):
    def test_controller_deleted_regenerates_one_replica_and_flags_the_reapply(self) -> None:
        before = self.applied()
        # `system host-delete controller-1`: the API deletes the row, then asks the conductor.
        self.dbapi.ihost_destroy(self.host2.uuid)
        trigger = {
            "type": sysinv_constants.APP_EVALUATE_REAPPLY_TYPE_HOST_DELETE,
            "openstack_worker": False,
            "personality": sysinv_constants.CONTROLLER,
        }
        self.conductor.evaluate_apps_reapply(self.context, trigger=trigger)
        after = read_overrides(self.rpc_app)
        report(
            "controller-1 deleted, trigger host-delete",
            before,
            after,
            reapply_flagged=self.flagged_for_reapply(),
        )
        self.assertEqual((before["replicaCount"], after["replicaCount"]), (2, 1))
        self.assertTrue(self.flagged_for_reapply())


class ProvisionedSimplex(PortierisPlatform, dbbase.ProvisionedAIOHostTestCase):
    system_mode = sysinv_constants.SYSTEM_MODE_SIMPLEX

    def install_ca_and_apply_puppet(self) -> TestCA:
        """`system certificate-install -m ssl_ca`, whose runtime manifest makes the conductor
        evaluate the re-apply of the applications (trigger runtime-apply-puppet)."""
        ca = TestCA.create("Example Root CA")
        self.install_ssl_ca(ca)
        self.conductor.evaluate_apps_reapply(self.context, trigger={"type": RUNTIME_APPLY_PUPPET})
        return ca

    def helm_override_update_reapply(self, values: dict | None = None) -> None:
        """`system helm-override-update [--values f] --reapply portieris portieris portieris`:
        the API stores the user overrides, then asks the conductor for an on-demand
        re-apply of the application (api/controllers/v1/helm_charts.py)."""
        if values is not None:
            self.set_user_overrides(values)
        self.conductor.evaluate_apps_reapply(
            self.context,
            trigger={"type": ON_DEMAND},
            app_name=APP,
            flag=sysinv_constants.HELM_OVERRIDE_UPDATE_WITH_REAPPLY,
        )

    def test_ssl_ca_certificate_regenerates_the_bundle_and_flags_the_reapply(self) -> None:
        before = self.applied()
        ca = self.install_ca_and_apply_puppet()
        after = read_overrides(self.rpc_app)
        report(
            "ssl_ca certificate installed, trigger runtime-apply-puppet",
            before,
            after,
            reapply_flagged=self.flagged_for_reapply(),
        )
        self.assertNotIn(ca.cert_pem.decode().strip(), before["platform"]["trustedCACerts"])
        self.assertIn(ca.cert_pem.decode().strip(), after["platform"]["trustedCACerts"])
        self.assertTrue(self.flagged_for_reapply())

    def test_nothing_changed_nothing_flagged(self) -> None:
        before = self.applied()
        self.conductor.evaluate_apps_reapply(self.context, trigger={"type": RUNTIME_APPLY_PUPPET})
        self.assertEqual(read_overrides(self.rpc_app), before)
        self.assertFalse(self.flagged_for_reapply())

    def test_on_demand_reapply_applies_a_pending_reapply(self) -> None:
        before = self.applied()
        self.record_applies()
        self.install_ca_and_apply_puppet()
        self.helm_override_update_reapply()
        finished = self.wait_for_conductor_applies(1)
        report(
            "pending reapply (ssl_ca), then helm-override-update --reapply",
            before,
            read_overrides(self.rpc_app),
            applied=self.applies,
        )
        self.assertEqual(finished, 1)
        self.assertEqual([(a["app"], a["hook"]) for a in self.applies], [(APP, "apply")])

    def test_on_demand_reapply_after_user_overrides_change(self) -> None:
        before = self.applied()
        self.record_applies()
        notary = TestCA.create("Notary CA")
        self.helm_override_update_reapply(
            {"TrustedCACert": base64.b64encode(notary.cert_pem).decode()}
        )
        finished = self.wait_for_conductor_applies(1)
        after = read_overrides(self.rpc_app)
        report(
            "user overrides changed, helm-override-update --reapply",
            before,
            after,
            applied=self.applies,
        )
        # sysinv regenerates the overrides on an on-demand re-apply only for applications
        # whose metadata.yaml lists the trigger type on-demand-reapply.
        self.assertIn(notary.cert_pem.decode().strip(), after["platform"]["trustedCACerts"])
        self.assertEqual(finished, 1)
        self.assertEqual([(a["app"], a["hook"]) for a in self.applies], [(APP, "apply")])
