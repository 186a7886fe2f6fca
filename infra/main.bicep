// DM Job function app on Azure: `azd up` deploys this file (subscription scope) with main.parameters.json.
// Layout after Azure's azd Flex Consumption / Durable Functions templates: resource group, user-assigned identity,
// Flex Consumption plan + function app (infra/app/api.bicep), storage with shared keys disabled, Application
// Insights on Log Analytics, least-privilege role assignments; plus what jobs need (rights on the jobs' resource
// group, an identity for container groups, AcrPull, optional VNet for Omnia classic jobs, optional Durable Task
// Scheduler, optional Entra ID authentication).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; used to name resources and to make a short unique token.')
param environmentName string

@minLength(1)
@description('Primary location for all resources (a region with Flex Consumption).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

// --- Names (empty = generated) -------------------------------------------------------------------------------
param resourceGroupName string = ''
param apiServiceName string = ''
param apiUserAssignedIdentityName string = ''
param jobsUserAssignedIdentityName string = ''
param applicationInsightsName string = ''
param appServicePlanName string = ''
param logAnalyticsName string = ''
param storageAccountName string = ''
param vNetName string = ''

@description('Object id of the deploying user; given Storage and DTS data roles for debugging. Empty: none.')
param principalId string = ''
@allowed(['User', 'ServicePrincipal', 'Group'])
param principalType string = 'User'

// --- Scale -------------------------------------------------------------------------------------------------
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

// --- Jobs --------------------------------------------------------------------------------------------------
@description('Resource group of the jobs\' container groups. Empty: a new group "<resource group>-jobs" is created. Set: an existing group.')
param jobsResourceGroupName string = ''
@description('Grant the narrow custom "container group operator" role in the jobs\' resource group (true) or Contributor (false, for tenants that forbid custom roles).')
param useCustomJobsRole bool = true
@description('Region of the jobs\' container groups. Empty: the app\'s location.')
param aciLocation string = ''
param jobStorePrefix string = 'dmjob'
param jobEnvPassthrough string = ''
param jobEnvExport string = ''
param jobRunnerModules string = ''
@description('Public URL of the job routes for jobs\' progress reports. Empty: https://<app host>/api/jobs.')
param publicJobsUrl string = ''

// --- DMSS --------------------------------------------------------------------------------------------------
param dmssUrl string = 'http://127.0.0.1:5000'
param publicDmssUrl string = ''

// --- Container registry (optional): AcrPull for the jobs' identity ------------------------------------------
@description('Name of an existing Azure Container Registry the jobs pull from. Empty: none (public images only).')
param containerRegistryName string = ''
@description('Resource group of that registry. Empty: the app\'s resource group.')
param containerRegistryResourceGroupName string = ''

// --- Networking (optional): VNet integration + subnet delegated to ACI for Omnia classic jobs ---------------
param vnetEnabled bool = false
@description('An existing subnet (delegated to Microsoft.ContainerInstance/containerGroups) for Omnia classic jobs; overrides the created one. The identity needs subnets/join/action on it.')
param omniaSubnetId string = ''
@description('Log Analytics workspace id (GUID) for Omnia classic diagnostics. Empty: this deployment\'s workspace.')
param omniaLogAnalyticsWorkspaceId string = ''

// --- Secrets (optional): an existing Key Vault and secret names -> Key Vault references ---------------------
param keyVaultName string = ''
param keyVaultResourceGroupName string = ''
param dmssAppAccessKeySecretName string = ''
param aciRegistryPasswordSecretName string = ''
param omniaLogAnalyticsWorkspaceKeySecretName string = ''

// --- Durable Functions backend ---------------------------------------------------------------------------------
// DurableTaskScheduler switches the storage provider to `azureManaged`, which the extension bundle has from 4.30.0
// on (the AzureManagedProvider entry of the bundle's extensions.json; preview bundles from 4.28.0-Preview):
// host.json asks for "[4.30.0, 5.0.0)". With an older bundle the host cannot start the Durable extension.
@allowed(['AzureStorage', 'DurableTaskScheduler'])
param durableBackend string = 'AzureStorage'
@allowed(['Consumption', 'Dedicated'])
param dtsSkuName string = 'Consumption'
param dtsCapacity int = 1
param dtsName string = ''
param taskHubName string = ''

// --- Callers: Entra ID (App Service Authentication) --------------------------------------------------------
@description('Require an Entra ID token on every request (App Service Authentication, 401 otherwise).')
param enableEntraAuth bool = false
@description('Application (client) id of the Entra app registration of this API (needed when enableEntraAuth).')
param entraClientId string = ''
@description('true: 401 for requests without a valid token. false: validate tokens when present, let token-less requests through to the function keys (job containers reporting progress have no Entra token).')
param entraRequireAuthentication bool = true
param entraAllowedAudiences array = []
param entraAllowedApplications array = []

var abbrs = loadJsonContent('./abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var rgName = !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
var createJobsResourceGroup = empty(jobsResourceGroupName)
var jobsRgName = createJobsResourceGroup ? '${rgName}-jobs' : jobsResourceGroupName
var functionAppName = !empty(apiServiceName) ? apiServiceName : '${abbrs.webSitesFunctions}api-${resourceToken}'
var deploymentStorageContainerName = 'app-package-${take(functionAppName, 32)}-${take(toLower(uniqueString(functionAppName, resourceToken)), 7)}'
var vnetResourceName = !empty(vNetName) ? vNetName : '${abbrs.networkVirtualNetworks}${resourceToken}'
var useDts = (durableBackend == 'DurableTaskScheduler')
var registryRgName = !empty(containerRegistryResourceGroupName) ? containerRegistryResourceGroupName : rgName
var keyVaultRgName = !empty(keyVaultResourceGroupName) ? keyVaultResourceGroupName : rgName

// Organize resources in a resource group
resource rg 'Microsoft.Resources/resourceGroups@2021-04-01' = {
  name: rgName
  location: location
  tags: tags
}

// The jobs' container groups live in their own resource group, so the app's rights there touch nothing else.
resource jobsRgNew 'Microsoft.Resources/resourceGroups@2021-04-01' = if (createJobsResourceGroup) {
  name: jobsRgName
  location: location
  tags: tags
}

// --- Identities --------------------------------------------------------------------------------------------
// The app's identity: storage, telemetry, Key Vault, DTS, container groups in the jobs' resource group.
module apiUserAssignedIdentity './core/identity/userAssignedIdentity.bicep' = {
  name: 'apiUserAssignedIdentity'
  scope: rg
  params: {
    location: location
    tags: tags
    identityName: !empty(apiUserAssignedIdentityName) ? apiUserAssignedIdentityName : '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
  }
}

// The jobs' identity: attached to container groups for registry pulls (AcrPull only). Job code runs with it,
// so it gets nothing else; the app's own identity is never attached to a job.
module jobsUserAssignedIdentity './core/identity/userAssignedIdentity.bicep' = {
  name: 'jobsUserAssignedIdentity'
  scope: rg
  params: {
    location: location
    tags: tags
    identityName: !empty(jobsUserAssignedIdentityName) ? jobsUserAssignedIdentityName : '${abbrs.managedIdentityUserAssignedIdentities}jobs-${resourceToken}'
  }
}

// --- Hosting -----------------------------------------------------------------------------------------------
module appServicePlan './core/host/appserviceplan.bicep' = {
  name: 'appserviceplan'
  scope: rg
  params: {
    name: !empty(appServicePlanName) ? appServicePlanName : '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    sku: {
      name: 'FC1'
      tier: 'FlexConsumption'
    }
  }
}

module storage './core/storage/storage-account.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: !empty(storageAccountName) ? storageAccountName : '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // identity-based access only (the app, the host, Durable Functions, deployment)
    containers: [
      { name: deploymentStorageContainerName }
    ]
  }
}

module monitoring './core/monitor/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    logAnalyticsName: !empty(logAnalyticsName) ? logAnalyticsName : '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: !empty(applicationInsightsName) ? applicationInsightsName : '${abbrs.insightsComponents}${resourceToken}'
    disableLocalAuth: true
  }
}

module serviceVirtualNetwork './app/vnet.bicep' = if (vnetEnabled) {
  name: 'serviceVirtualNetwork'
  scope: rg
  params: {
    location: location
    tags: tags
    vNetName: vnetResourceName
  }
}

module dts './app/dts.bicep' = if (useDts) {
  name: 'durableTaskScheduler'
  scope: rg
  params: {
    name: !empty(dtsName) ? dtsName : '${abbrs.durableTaskSchedulers}${resourceToken}'
    taskHubName: !empty(taskHubName) ? taskHubName : '${abbrs.durableTaskHubs}${resourceToken}'
    location: location
    tags: tags
    skuName: dtsSkuName
    skuCapacity: dtsCapacity
  }
}

module registryAccess './app/registry-access.bicep' = if (!empty(containerRegistryName)) {
  name: 'registryAccess'
  scope: resourceGroup(registryRgName)
  params: {
    registryName: containerRegistryName
    principalId: jobsUserAssignedIdentity.outputs.identityPrincipalId
  }
}

module api './app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    appServicePlanId: appServicePlan.outputs.id
    runtimeName: 'python'
    runtimeVersion: '3.11'
    storageAccountName: storage.outputs.name
    deploymentStorageContainerName: deploymentStorageContainerName
    virtualNetworkSubnetId: vnetEnabled ? serviceVirtualNetwork.outputs.appSubnetID : ''
    identityId: apiUserAssignedIdentity.outputs.identityId
    identityClientId: apiUserAssignedIdentity.outputs.identityClientId
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    jobStorePrefix: jobStorePrefix
    publicJobsUrl: publicJobsUrl
    jobEnvPassthrough: jobEnvPassthrough
    jobEnvExport: jobEnvExport
    jobRunnerModules: jobRunnerModules
    dmssUrl: dmssUrl
    publicDmssUrl: publicDmssUrl
    aciResourceGroupName: jobsRgName
    aciLocation: !empty(aciLocation) ? aciLocation : location
    jobsIdentityId: jobsUserAssignedIdentity.outputs.identityId
    aciRegistryServer: !empty(containerRegistryName) ? registryAccess.outputs.loginServer : ''
    omniaSubnetId: !empty(omniaSubnetId) ? omniaSubnetId : (vnetEnabled ? serviceVirtualNetwork.outputs.aciSubnetID : '')
    omniaLogAnalyticsWorkspaceId: !empty(omniaLogAnalyticsWorkspaceId) ? omniaLogAnalyticsWorkspaceId : monitoring.outputs.logAnalyticsCustomerId
    keyVaultName: keyVaultName
    dmssAppAccessKeySecretName: dmssAppAccessKeySecretName
    aciRegistryPasswordSecretName: aciRegistryPasswordSecretName
    omniaLogAnalyticsWorkspaceKeySecretName: omniaLogAnalyticsWorkspaceKeySecretName
    durableBackend: durableBackend
    dtsEndpoint: useDts ? dts.outputs.dtsEndpoint : ''
    taskHubName: useDts ? dts.outputs.taskHubName : ''
    enableEntraAuth: enableEntraAuth
    entraClientId: entraClientId
    entraRequireAuthentication: entraRequireAuthentication
    entraAllowedAudiences: entraAllowedAudiences
    entraAllowedApplications: entraAllowedApplications
  }
}

// --- Role assignments (least privilege) ----------------------------------------------------------------------
// Storage Blob Data Owner, Storage Queue Data Contributor, Storage Table Data Contributor on the app's storage;
// Monitoring Metrics Publisher on Application Insights.
module rbac './app/rbac.bicep' = {
  name: 'rbacAssignments'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    appInsightsName: monitoring.outputs.applicationInsightsName
    managedIdentityPrincipalId: apiUserAssignedIdentity.outputs.identityPrincipalId
    userIdentityPrincipalId: principalId
    userIdentityPrincipalType: principalType
    allowUserIdentityPrincipal: !empty(principalId)
  }
}

// Custom role: only container-group operations (see core/security/container-groups-role.bicep).
module containerGroupsRole './core/security/container-groups-role.bicep' = if (useCustomJobsRole) {
  name: 'containerGroupsRole'
  params: {
    roleName: 'DM Job container group operator (${environmentName}-${resourceToken})'
    assignableScopes: [
      '${subscription().id}/resourceGroups/${jobsRgName}'
      rg.id
    ]
  }
  dependsOn: [
    jobsRgNew
  ]
}

module jobsAccess './app/jobs-access.bicep' = {
  name: 'jobsAccess'
  scope: resourceGroup(jobsRgName)
  params: {
    principalId: apiUserAssignedIdentity.outputs.identityPrincipalId
    useCustomRole: useCustomJobsRole
    customRoleDefinitionResourceId: useCustomJobsRole ? containerGroupsRole.outputs.id : ''
  }
  dependsOn: [
    jobsRgNew
  ]
}

// Attach the jobs' identity to container groups: Managed Identity Operator on that identity only.
module jobsIdentityOperator './app/identity-operator.bicep' = {
  name: 'jobsIdentityOperator'
  scope: rg
  params: {
    jobsIdentityName: jobsUserAssignedIdentity.outputs.identityName
    principalId: apiUserAssignedIdentity.outputs.identityPrincipalId
  }
}

// Put container groups into the created ACI subnet: the same custom role on the VNet (subnets/join/action), or
// Network Contributor on the VNet when custom roles are off.
var networkContributorRoleId = '4d97b98b-1d4f-4787-a291-c67834d212e7' // Network Contributor (fallback only)

module vnetAccess './app/vnet-access.bicep' = if (vnetEnabled) {
  name: 'vnetAccess'
  scope: rg
  params: {
    vNetName: vnetResourceName
    principalId: apiUserAssignedIdentity.outputs.identityPrincipalId
    roleDefinitionResourceId: useCustomJobsRole ? containerGroupsRole.outputs.id : subscriptionResourceId('Microsoft.Authorization/roleDefinitions', networkContributorRoleId)
  }
  dependsOn: [
    serviceVirtualNetwork
  ]
}

module keyVaultAccess './app/keyvault-access.bicep' = if (!empty(keyVaultName)) {
  name: 'keyVaultAccess'
  scope: resourceGroup(keyVaultRgName)
  params: {
    keyVaultName: keyVaultName
    principalId: apiUserAssignedIdentity.outputs.identityPrincipalId
  }
}

module dtsAccess './app/dts-access.bicep' = if (useDts) {
  name: 'dtsRoleAssignment'
  scope: rg
  params: {
    dtsName: useDts ? dts.outputs.dtsName : ''
    principalId: apiUserAssignedIdentity.outputs.identityPrincipalId
  }
}

module dtsDashboardAccess './app/dts-access.bicep' = if (useDts && !empty(principalId)) {
  name: 'dtsDashboardRoleAssignment'
  scope: rg
  params: {
    dtsName: useDts ? dts.outputs.dtsName : ''
    principalId: principalId
    principalType: principalType
  }
}

// --- Outputs (azd stores them in .azure/<env>/.env) --------------------------------------------------------
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_JOBS_RESOURCE_GROUP string = jobsRgName
output SERVICE_API_NAME string = api.outputs.SERVICE_API_NAME
output AZURE_FUNCTION_NAME string = api.outputs.SERVICE_API_NAME
output SERVICE_API_URI string = api.outputs.SERVICE_API_URI
output DM_JOB_URL string = api.outputs.DM_JOB_URL
output AZURE_DURABLE_BACKEND string = durableBackend
