package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/bulwarkhq/bulwark/install/kubernetes"
)

// newInstallKubernetesCmd prints the manifests of install/kubernetes with
// the image set, for kubectl apply -f -.
func newInstallKubernetesCmd() *cobra.Command {
	var image string
	var print bool
	cmd := &cobra.Command{
		Use:   "kubernetes --print [--image REF]",
		Short: "Print the Kubernetes manifests (namespace, RBAC, policies ConfigMap, DaemonSet) for kubectl apply -f -",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !print {
				return errors.New("bulwark applies nothing to a cluster itself: use --print and pipe it to kubectl apply -f -")
			}
			out, err := kubernetes.Render(image)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().BoolVar(&print, "print", false, "print the manifests on stdout")
	cmd.Flags().StringVar(&image, "image", kubernetes.DefaultImage, "image of the agent and the collector (make image builds "+kubernetes.DefaultImage+")")
	return cmd
}
